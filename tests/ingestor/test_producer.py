"""Publisher details against the real broker: backpressure bound, records Kafka refuses."""

from __future__ import annotations

import asyncio

import orjson

from services.common import topics
from services.common.broker import EmbeddedBroker
from services.ingestor.pipeline import Record
from services.ingestor.producer import Publisher
from tests.ingestor.kafka_helpers import kafka_for, read_all


def _trade(i: int, pad: int = 0) -> Record:
    value = {"exchange": "binance-usdm", "symbol": "BTCUSDT", "instrument": "BTC-USDT-PERP", "base": "BTC",
             "quote": "USDT", "market": "perp", "side": "buy", "price": 100.0, "size": 1.0, "notional_usd": 100.0,
             "trade_id": str(i), "ts": 1, "ts_recv": 2, "pad": "x" * pad}
    return (topics.TRADES.name, b"BTC-USDT-PERP", orjson.dumps(value))


def test_refused_records_become_dead_letters_and_the_rest_is_acknowledged(broker: EmbeddedBroker) -> None:
    async def run() -> Publisher:
        publisher = Publisher(kafka_for(broker.bootstrap), max_request_size=20_000)
        await publisher.start()
        try:
            await publisher.publish([_trade(i) for i in range(50)])
            await publisher.publish([_trade(50, pad=50_000)])                       # too large for Kafka
            await publisher.publish([(topics.DEADLETTER.name, b"x", b'"' + b"y" * 50_000 + b'"')])  # refused too
            await publisher.publish([_trade(i) for i in range(51, 100)])
            assert await publisher.flush(30)
        finally:
            await publisher.stop()
        return publisher

    publisher = asyncio.run(run())
    published = asyncio.run(read_all(broker.bootstrap, [topics.TRADES.name, topics.DEADLETTER.name]))
    ids = sorted(int(v["trade_id"]) for _, v in published[topics.TRADES.name])
    assert ids == [i for i in range(100) if i != 50]
    [(key, letter)] = published[topics.DEADLETTER.name]
    assert key == b"ingestor" and letter["reason"].startswith("rejected")
    assert letter["raw"].startswith('{"exchange":"binance-usdm"') and "truncated" in letter["reason"]
    assert publisher.errors == 2 and publisher.dropped == 1 and publisher.pending == 0


def test_publish_waits_at_the_bound_instead_of_growing(broker: EmbeddedBroker) -> None:
    async def run() -> tuple[int, int]:
        publisher = Publisher(kafka_for(broker.bootstrap), buffer_limit=100, chunk=50)
        await publisher.start()
        peak = 0
        try:
            for i in range(2000):
                await publisher.publish([_trade(i)])
                peak = max(peak, publisher.pending)
            assert await publisher.flush(30)
        finally:
            await publisher.stop()
        return peak, publisher.overflows

    peak, overflows = asyncio.run(run())
    assert peak <= 100 and overflows > 0
    published = asyncio.run(read_all(broker.bootstrap, [topics.TRADES.name]))
    assert len(published[topics.TRADES.name]) == 2000
