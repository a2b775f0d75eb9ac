"""Gate futures adapter against the fake Gate endpoint: signed trade sizes (negative = taker sold),
quanto multipliers, public liquidation orders (positive size = forced buy = short closed)."""

from __future__ import annotations

import orjson
import pytest

from services.common.events import Liquidation, Trade
from services.ingestor.venues.base import BAD_VALUE, UNKNOWN_EVENT, FrameError, Instrument, Subscription
from services.ingestor.venues.gate import Gate
from tests.ingestor.fakes import gate as fake
from tests.ingestor.venues.session import TS_RECV, assert_events, identity, parse_all, run_session, table

BTC = Instrument("gate", "BTC_USDT", "BTC-USDT-PERP", "BTC", "USDT", "perp", "linear", 0.0001)
DOGE = Instrument("gate", "DOGE_USDT", "DOGE-USDT-PERP", "DOGE", "USDT", "perp", "linear", 10.0)
ADAPTER = Gate(table(BTC, DOGE))



def test_session_against_fake_gate() -> None:
    internal = {**fake.trade("BTC_USDT", 27753481, 50, "100000", 1737972000003), "is_internal": True}
    frames = [
        fake.update_frame("futures.trades", [fake.trade("BTC_USDT", 27753479, -2500, "100000.1", 1737972000001),
                                             fake.trade("BTC_USDT", 27753480, 700, "100000.2", 1737972000002),
                                             internal]),
        fake.update_frame("futures.public_liquidates", [fake.liquidation("DOGE_USDT", 1200, "0.35", 1737972000004),
                                                        fake.liquidation("BTC_USDT", -30, "97000", 1737972000005)]),
    ]
    subscription = Subscription(trades=("BTC_USDT",), liquidations=("BTC_USDT", "DOGE_USDT"))
    session = run_session(ADAPTER, fake.GateProtocol(), subscription, 3, frames)
    assert session.subscribed == ["futures.trades:BTC_USDT", "futures.public_liquidates:BTC_USDT",
                                  "futures.public_liquidates:DOGE_USDT"]
    assert orjson.loads(session.heartbeat_replies[0])["channel"] == "futures.pong"
    assert_events(parse_all(ADAPTER, session.data), [
        Trade(**identity(BTC, ts=1737972000001), side="sell", price=100000.1, size=0.25, notional_usd=25000.025,
              trade_id="27753479"),
        Trade(**identity(BTC, ts=1737972000002), side="buy", price=100000.2, size=0.07, notional_usd=7000.014,
              trade_id="27753480"),
        Liquidation(**identity(DOGE, ts=1737972000004), liquidated_side="short", price=0.35, size=12000.0,
                    notional_usd=4200.0, id="gate:DOGE_USDT:1737972000004:1200:0.35"),
        Liquidation(**identity(BTC, ts=1737972000005), liquidated_side="long", price=97000.0, size=0.003,
                    notional_usd=291.0, id="gate:BTC_USDT:1737972000005:-30:97000"),
    ])


def test_liquidation_payloads() -> None:
    def payloads(subscription: Subscription) -> list[list[str]]:
        return [orjson.loads(frame)["payload"] for frame in ADAPTER.subscribe_frames(subscription)]

    assert payloads(Subscription(trades=("BTC_USDT",))) == [["BTC_USDT"], ["BTC_USDT", "DOGE_USDT"]]
    assert [orjson.loads(f)["payload"] for f in Gate({}).subscribe_frames(Subscription())] == [["!all"]]


def test_subscription_error_reply_and_zero_size() -> None:
    error = fake.GateProtocol().reply('{"time":1,"channel":"futures.liquidates","event":"subscribe","payload":[]}')[0]
    with pytest.raises(FrameError) as err:
        ADAPTER.parse(error, TS_RECV)
    assert err.value.reason_class == UNKNOWN_EVENT
    with pytest.raises(FrameError) as err:
        ADAPTER.parse(fake.update_frame("futures.trades", [fake.trade("BTC_USDT", 1, 0, "1", 1)]), TS_RECV)
    assert err.value.reason_class == BAD_VALUE
