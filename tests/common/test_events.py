from __future__ import annotations

import math

import pytest

from services.common import codec
from services.common.events import InvalidEvent, Liquidation, Trade

TRADE = {
    "exchange": "binance-usdm", "symbol": "BTCUSDT", "instrument": "BTC-USDT-PERP", "base": "BTC",
    "quote": "USDT", "market": "perp", "side": "buy", "price": 101000.5, "size": 0.01,
    "notional_usd": 1010.005, "trade_id": "123", "ts": 1737936000000, "ts_recv": 1737936000012,
}


def test_trade_round_trips_through_the_codec() -> None:
    trade = Trade.from_dict(TRADE)
    assert Trade.from_dict(codec.decode(codec.encode(trade))) == trade


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("price", math.nan, "price must be finite"),
    ("price", math.inf, "price must be finite"),
    ("size", 0, "size must be > 0"),
    ("size", -1.0, "size must be > 0"),
    ("price", "101000", "price must be a number"),
    ("side", "long", "side must be one of"),
    ("ts", -5, "ts must be a non-negative integer"),
    ("trade_id", "", "trade_id must be a non-empty string"),
])
def test_invalid_trade_fields_give_a_reason(field: str, value: object, reason: str) -> None:
    with pytest.raises(InvalidEvent, match=reason):
        Trade.from_dict({**TRADE, field: value})


def test_liquidation_requires_a_position_side() -> None:
    data = {k: v for k, v in TRADE.items() if k not in ("side", "trade_id")}
    data.update(liquidated_side="long", id="binance-usdm:BTCUSDT:1")
    assert Liquidation.from_dict(data).liquidated_side == "long"
    with pytest.raises(InvalidEvent, match="liquidated_side"):
        Liquidation.from_dict({**data, "liquidated_side": "sell"})


def test_non_object_is_rejected() -> None:
    with pytest.raises(InvalidEvent, match="expected a JSON object"):
        Trade.from_dict([1, 2])


def test_dead_letter_keeps_any_bytes_losslessly() -> None:
    letter = codec.dead_letter("ingestor:test", b"\xff\xfe{", "invalid JSON")
    assert letter.raw.startswith("base64:")
    assert codec.dead_letter("s", b'{"a":1', "r").raw == '{"a":1'
