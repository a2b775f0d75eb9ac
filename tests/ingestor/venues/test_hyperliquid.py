"""Hyperliquid adapter against the fake Hyperliquid websocket: per-coin trades subscriptions,
``{"method":"ping"}`` heartbeat, B/A taker sides, ``k`` (1,000-unit) coins, the meta parser."""

from __future__ import annotations

import pytest

from services.common.events import Trade
from services.ingestor.instruments import load_instruments
from services.ingestor.venues.base import BAD_FIELD, UNKNOWN_EVENT, FrameError, Subscription
from services.ingestor.venues.hyperliquid import Hyperliquid
from tests.ingestor.fakes import hyperliquid as fake
from tests.ingestor.venues.session import TS_RECV, assert_events, identity, parse_all, run_session

TABLE = load_instruments("hyperliquid")
ADAPTER = Hyperliquid(TABLE)


def test_session_against_fake_hyperliquid() -> None:
    frames = [fake.trades_frame([fake.trade("BTC", "B", "100000.0", "0.25", 1737972000001, 877707108085800),
                                 fake.trade("BTC", "A", "99999.0", "1.5", 1737972000002, 877707108085801)]),
              fake.trades_frame([fake.trade("kPEPE", "A", "0.018", "20000", 1737972000003, 877707108085802)])]
    session = run_session(ADAPTER, fake.HyperliquidProtocol(), Subscription(trades=("BTC", "kPEPE")), 2, frames)
    assert session.subscribed == ["trades:BTC", "trades:kPEPE"]
    assert session.heartbeat_replies == ['{"channel":"pong"}']
    btc, pepe = identity(TABLE["BTC"]), identity(TABLE["kPEPE"])
    assert_events(parse_all(ADAPTER, session.data), [
        Trade(**btc, side="buy", price=100000.0, size=0.25, notional_usd=25000.0, trade_id="877707108085800",
              ts=1737972000001),
        Trade(**btc, side="sell", price=99999.0, size=1.5, notional_usd=149998.5, trade_id="877707108085801",
              ts=1737972000002),
        # kPEPE: 20,000 units of 1,000 PEPE at 0.018 USDC per 1,000
        Trade(**pepe, side="sell", price=0.000018, size=20_000_000.0, notional_usd=360.0, trade_id="877707108085802",
              ts=1737972000003),
    ])


@pytest.mark.parametrize(("frame", "reason"), [
    ('{"channel":"error","data":"Invalid subscription"}', UNKNOWN_EVENT),
    ('{"channel":"l2Book","data":{}}', UNKNOWN_EVENT),
    (fake.trades_frame([{**fake.trade("BTC", "S", "1", "1", 1, 1)}]), BAD_FIELD),
])
def test_errors(frame: str, reason: str) -> None:
    with pytest.raises(FrameError) as err:
        ADAPTER.parse(frame, TS_RECV)
    assert err.value.reason_class == reason


def test_meta_parser() -> None:
    body = {"universe": [{"name": "BTC", "szDecimals": 5, "maxLeverage": 40},
                         {"name": "kPEPE", "szDecimals": 0, "maxLeverage": 10},
                         {"name": "OLD", "szDecimals": 1, "maxLeverage": 3, "isDelisted": True}]}
    assert {inst.symbol: inst for inst in Hyperliquid.parse_rest_instruments(body)} == {
        "BTC": TABLE["BTC"], "kPEPE": TABLE["kPEPE"]}


def test_refresh_posts_the_meta_request() -> None:
    from services.ingestor import instruments
    from services.ingestor.refresh import refresh_from_rest

    calls: list[tuple[str, bytes | None]] = []

    def fetch(url: str, timeout: float, body: bytes | None = None) -> object:
        calls.append((url, body))
        return {"universe": [{"name": "NEWCOIN", "szDecimals": 1, "maxLeverage": 3}]}

    try:
        assert refresh_from_rest(ADAPTER, fetch=fetch) == 1
        assert calls == [("https://api.hyperliquid.xyz/info", b'{"type":"meta"}')]
        assert load_instruments("hyperliquid")["NEWCOIN"].instrument == "NEWCOIN-USDC-PERP"
    finally:
        instruments._refreshed.pop("hyperliquid", None)
