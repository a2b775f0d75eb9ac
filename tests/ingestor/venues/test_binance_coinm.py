"""Binance COIN-M adapter: inverse contract sizes on Binance's combined-stream frames, through the
runtime against the fake Binance server (same protocol as USD-M), and its exchangeInfo parser."""

from __future__ import annotations

import asyncio

import pytest

from services.common.events import Liquidation, Trade
from services.common.frames import RawFrame
from services.ingestor.runtime import Connection, Timing
from services.ingestor.venues.base import UNKNOWN_INSTRUMENT, FrameError, Instrument, Subscription
from services.ingestor.venues.binance_coinm import BinanceCoinm
from tests.ingestor.fakes import binance_coinm as fake
from tests.ingestor.fakes.binance_usdm import FakeBinance
from tests.ingestor.fakes.exchange import dump
from tests.ingestor.venues.session import TS_RECV, assert_events, identity, table

BTC = Instrument("binance-coinm", "BTCUSD_PERP", "BTC-USD-PERP", "BTC", "USD", "perp", "inverse", 100.0)
ETH_Q = Instrument("binance-coinm", "ETHUSD_250328", "ETH-USD-250328", "ETH", "USD", "future", "inverse", 10.0)
ADAPTER = BinanceCoinm(table(BTC, ETH_Q))


def test_contracts_are_usd_of_inverse_contracts() -> None:
    frames = [
        fake.agg_trade("BTCUSD_PERP", 912000001, "100000.0", "5", True, 1737972000001),   # 5 x 100 USD, taker sold
        fake.agg_trade("ETHUSD_250328", 77, "3200", "32", False, 1737972000002),           # 32 x 10 USD, taker bought
        fake.force_order("BTCUSD_PERP", "SELL", "98000", "98500.0", "197", 1737972000003),
    ]
    btc, eth = identity(BTC), identity(ETH_Q)
    assert_events([e for f in frames for e in ADAPTER.parse(f, TS_RECV)], [
        Trade(**btc, side="sell", price=100000.0, size=0.005, notional_usd=500.0, trade_id="912000001",
              ts=1737972000001),
        Trade(**eth, side="buy", price=3200.0, size=0.1, notional_usd=320.0, trade_id="77", ts=1737972000002),
        Liquidation(**btc, liquidated_side="long", price=98500.0, size=19700 / 98500, notional_usd=19700.0,
                    id="binance-coinm:BTCUSD_PERP:1737972000003:SELL:197", ts=1737972000003),
    ])


def test_documented_force_order_of_an_unknown_delivery_contract() -> None:
    frame = dump({"stream": "!forceOrder@arr", "data": fake.DOC_FORCE_ORDER})
    with pytest.raises(FrameError) as err:
        ADAPTER.parse(frame, TS_RECV)         # BTCUSD_200925 expired long ago: not in the table
    assert err.value.reason_class == UNKNOWN_INSTRUMENT
    known = BinanceCoinm(table(BTC, Instrument("binance-coinm", "BTCUSD_200925", "BTC-USD-200925", "BTC", "USD",
                                               "future", "inverse", 100.0)))
    [liq] = known.parse(frame, TS_RECV)
    assert isinstance(liq, Liquidation)
    assert (liq.liquidated_side, liq.price, liq.notional_usd) == ("long", 9496.5, 100.0)


async def _through_runtime() -> list[str]:
    queue: asyncio.Queue[RawFrame] = asyncio.Queue()
    async with FakeBinance(ping_interval=0.5) as server:
        connection = Connection(ADAPTER, Subscription(trades=("BTCUSD_PERP",)), queue,
                                Timing(ping_interval=None, check_interval=0.05), url_override=server.url)
        task = asyncio.create_task(connection.run())
        try:
            await server.wait_for_clients(1)
            await server.trade("BTCUSD_PERP", price="100000.0", qty="3")
            await server.liquidation("BTCUSD_PERP", side="BUY", qty="2")
            frames = [(await asyncio.wait_for(queue.get(), 10)).frame for _ in range(2)]
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert server.streams_per_connect == [["btcusd_perp@aggTrade", "!forceOrder@arr"]]
    return frames


def test_runtime_against_the_fake_binance_server() -> None:
    trade, liquidation = (event for frame in asyncio.run(_through_runtime()) for event in ADAPTER.parse(frame, 1))
    assert isinstance(trade, Trade) and trade.notional_usd == 300.0 and trade.size == pytest.approx(0.003)
    assert isinstance(liquidation, Liquidation) and liquidation.liquidated_side == "short"
    assert liquidation.notional_usd == 200.0


def test_exchange_info_parser() -> None:
    body = {"symbols": [
        {"symbol": "BTCUSD_PERP", "pair": "BTCUSD", "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
         "contractStatus": "TRADING", "contractSize": 100, "baseAsset": "BTC", "quoteAsset": "USD",
         "marginAsset": "BTC"},
        {"symbol": "ETHUSD_250328", "pair": "ETHUSD", "contractType": "CURRENT_QUARTER", "deliveryDate": 1743148800000,
         "contractStatus": "TRADING", "contractSize": 10, "baseAsset": "ETH", "quoteAsset": "USD"},
        {"symbol": "LUNAUSD_PERP", "contractType": "PERPETUAL", "contractStatus": "SETTLING", "contractSize": 10,
         "baseAsset": "LUNA", "quoteAsset": "USD"}]}
    assert BinanceCoinm.parse_rest_instruments(body) == [BTC, ETH_Q]
