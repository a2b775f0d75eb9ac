"""The Binance USD-M adapter on frames in Binance's exact format."""

from __future__ import annotations

import pytest

from services.common.events import Liquidation, Trade
from services.ingestor.instruments import load_instruments
from services.ingestor.venues import base
from services.ingestor.venues.base import FrameError, Subscription
from services.ingestor.venues.binance_usdm import BinanceUsdm
from tests.ingestor.frames import agg_trade, force_order

VENUE = BinanceUsdm(load_instruments("binance-usdm"))

# Binance's documented forceOrder example, inside the combined-stream envelope.
DOC_FORCE_ORDER = ('{"stream":"!forceOrder@arr","data":{"e":"forceOrder","E":1568014460893,"o":{"s":"BTCUSDT",'
                   '"S":"SELL","o":"LIMIT","f":"IOC","q":"0.014","p":"9910","ap":"9910","X":"FILLED",'
                   '"l":"0.014","z":"0.014","T":1568014460893}}}')
DOC_AGG_TRADE = ('{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":123456789,"a":5933014,"s":"BTCUSDT",'
                 '"p":"0.001","q":"100","f":100,"l":105,"T":123456785,"m":true}}')


def test_agg_trade_maker_buyer_means_taker_sold() -> None:
    [trade] = VENUE.parse(DOC_AGG_TRADE, 123456999)
    assert isinstance(trade, Trade)
    assert (trade.exchange, trade.symbol, trade.instrument, trade.market) == (
        "binance-usdm", "BTCUSDT", "BTC-USDT-PERP", "perp")
    assert trade.side == "sell"
    assert trade.price == 0.001 and trade.size == 100 and trade.notional_usd == pytest.approx(0.1)
    assert (trade.trade_id, trade.ts, trade.ts_recv) == ("5933014", 123456785, 123456999)


def test_agg_trade_taker_buy_and_raw_payload_without_envelope() -> None:
    frame = agg_trade(maker=False, price="101681.4", qty="0.5")
    raw = frame[frame.index('"data":') + 7:-1]
    for text in (frame, raw):
        [trade] = VENUE.parse(text, 1)
        assert isinstance(trade, Trade)
        assert trade.side == "buy"
        assert trade.notional_usd == pytest.approx(50840.7)


def test_thousand_contract_price_and_size_are_per_base_unit() -> None:
    [trade] = VENUE.parse(agg_trade("1000PEPEUSDT", price="0.016012", qty="60000"), 1)
    assert isinstance(trade, Trade)
    assert trade.base == "PEPE" and trade.instrument == "PEPE-USDT-PERP"
    assert trade.price == pytest.approx(0.000016012)
    assert trade.size == pytest.approx(60_000_000)
    assert trade.notional_usd == pytest.approx(60000 * 0.016012)


def test_force_order_sell_liquidates_a_long() -> None:
    [liq] = VENUE.parse(DOC_FORCE_ORDER, 1568014461000)
    assert isinstance(liq, Liquidation)
    assert liq.liquidated_side == "long"
    assert liq.price == 9910 and liq.size == 0.014 and liq.notional_usd == pytest.approx(138.74)
    assert liq.id == "binance-usdm:BTCUSDT:1568014460893:SELL:0.014"
    assert liq.ts == 1568014460893


def test_force_order_buy_liquidates_a_short_and_unfilled_average_uses_price() -> None:
    [liq] = VENUE.parse(force_order(side="BUY", price="3200.5", avg="0.00", qty="2"), 1)
    assert isinstance(liq, Liquidation)
    assert liq.liquidated_side == "short"
    assert liq.price == 3200.5 and liq.notional_usd == pytest.approx(6401.0)


def test_subscribe_reply_is_ignored() -> None:
    assert VENUE.parse('{"result":null,"id":1}', 1) == []


@pytest.mark.parametrize(("frame", "reason"), [
    ("not json", base.INVALID_JSON),
    ("[1,2]", base.UNKNOWN_EVENT),
    ('{"stream":"x","data":{"e":"depthUpdate"}}', base.UNKNOWN_EVENT),
    ('{"stream":"x","data":[1]}', base.BAD_FIELD),
    (agg_trade(symbol="NOPEUSDT"), base.UNKNOWN_INSTRUMENT),
    (agg_trade(price="NaN"), base.BAD_VALUE),
    (agg_trade(price="inf"), base.BAD_VALUE),
    (agg_trade(price="-1"), base.BAD_VALUE),
    (agg_trade(qty="0"), base.BAD_VALUE),
    (agg_trade(qty="abc"), base.BAD_FIELD),
    (agg_trade().replace('"m":true', '"m":"yes"'), base.BAD_FIELD),
    (agg_trade().replace('"a":2541000123', '"a":"25x"'), base.BAD_FIELD),
    (force_order(side="LONG"), base.BAD_FIELD),
    (force_order().replace('"T":1568014460893}', '"T":-5}'), base.BAD_FIELD),
    ('{"stream":"!forceOrder@arr","data":{"e":"forceOrder","E":1,"o":null}}', base.BAD_FIELD),
])
def test_bad_frames_raise_frame_error_with_reason_class(frame: str, reason: str) -> None:
    with pytest.raises(FrameError) as caught:
        VENUE.parse(frame, 1)
    assert caught.value.reason_class == reason


def test_combined_stream_url_and_channels() -> None:
    sub = Subscription(trades=("BTCUSDT", "1000PEPEUSDT"))
    assert VENUE.connect_url(sub) == ("wss://fstream.binance.com/stream?streams="
                                      "btcusdt@aggTrade/1000pepeusdt@aggTrade/!forceOrder@arr")
    assert VENUE.subscribe_frames(sub) == []
    assert VENUE.channel_of(agg_trade()) == "trades"
    assert VENUE.channel_of(DOC_FORCE_ORDER) == "liquidations"
