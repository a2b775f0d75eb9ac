"""Coinbase adapter against the fake Coinbase feed: ``side`` is the MAKER side, so the taker side
is the opposite; ``last_match`` on subscribe is a trade too."""

from __future__ import annotations

import pytest

from services.common.events import Trade
from services.ingestor.venues.base import BAD_FIELD, UNKNOWN_EVENT, FrameError, Instrument, Subscription
from services.ingestor.venues.coinbase import Coinbase
from tests.ingestor.fakes import coinbase as fake
from tests.ingestor.venues.session import TS_RECV, assert_events, parse_all, run_session, table

BTC = Instrument("coinbase", "BTC-USD", "BTC-USD", "BTC", "USD", "spot", "spot", 1.0)
ADAPTER = Coinbase(table(BTC))
COMMON = {"exchange": "coinbase", "symbol": "BTC-USD", "instrument": "BTC-USD", "base": "BTC", "quote": "USD",
          "market": "spot", "ts_recv": TS_RECV}


def test_session_against_fake_coinbase() -> None:
    frames = [fake.match_frame(fake.match(101, "BTC-USD", "sell", "0.02", "100000.01", "2025-01-27T10:00:00.001000Z")),
              fake.match_frame(fake.match(102, "BTC-USD", "buy", "1.5", "99999.99", "2025-01-27T10:00:00.002999Z"))]
    session = run_session(ADAPTER, fake.CoinbaseProtocol(), Subscription(trades=("BTC-USD",)), 1, frames,
                          data_marker='"last_match"')
    assert session.subscribed == ["matches:BTC-USD"]
    assert session.heartbeat_replies == []     # no app-level heartbeat: websocket pings
    last_match = [ack for ack in session.acks if '"last_match"' in ack]
    assert_events(parse_all(ADAPTER, last_match + session.data), [
        # maker buy -> the taker sold
        Trade(**COMMON, side="sell", price=100000.0, size=0.5, notional_usd=50000.0, trade_id="1", ts=1737971999000),
        # maker sell (an up-tick) -> the taker bought
        Trade(**COMMON, side="buy", price=100000.01, size=0.02, notional_usd=2000.0002, trade_id="101",
              ts=1737972000001),
        Trade(**COMMON, side="sell", price=99999.99, size=1.5, notional_usd=149999.985, trade_id="102",
              ts=1737972000002),
    ])


def test_error_and_unknown_types() -> None:
    for frame, reason in ((fake.CoinbaseProtocol().reply('{"type":"subscribe_all"}')[0], UNKNOWN_EVENT),
                          ('{"type":"l2update","product_id":"BTC-USD","changes":[]}', UNKNOWN_EVENT),
                          (fake.match_frame({**fake.match(1, "BTC-USD", "buy", "1", "1", "not-a-time")}), BAD_FIELD)):
        with pytest.raises(FrameError) as err:
            ADAPTER.parse(frame, TS_RECV)
        assert err.value.reason_class == reason
    assert ADAPTER.parse('{"type":"heartbeat","sequence":90,"last_trade_id":20,"product_id":"BTC-USD",'
                         '"time":"2025-01-27T10:00:00.000000Z"}', TS_RECV) == []
