"""Broker outage: the embedded broker stops mid-stream and restarts on the same port.

The embedded broker keeps data in memory only, so a restart loses what it held. The check is
therefore split at the outage: every event produced before it is read back (and acknowledged)
before the broker stops; every event produced during and after it must be acknowledged by the
restarted broker and read back from it. Together: each of the N events is in Kafka once
acknowledged, none lost; the producer saw failures (counted), dropped nothing, and paused
nobody beyond its bound.
"""

from __future__ import annotations

import asyncio

from services.common import topics
from services.common.broker import EmbeddedBroker
from services.common.frames import RawFrame
from services.common.kafka import create_topics
from services.ingestor.instruments import load_instruments
from services.ingestor.pipeline import Pipeline
from services.ingestor.producer import Publisher
from services.ingestor.venues.binance_usdm import BinanceUsdm
from tests.ingestor.frames import agg_trade
from tests.ingestor.kafka_helpers import kafka_for, read_all

VENUE = BinanceUsdm(load_instruments("binance-usdm"))

PER_PHASE = 1500


def _frames(start: int, count: int) -> list[RawFrame]:
    base_ts = 1_737_975_600_000
    return [RawFrame(VENUE.id, agg_trade("ETHUSDT", agg_id=i, price="3188.25", ts=base_ts + i), base_ts + i)
            for i in range(start, start + count)]


def _trade_ids(published: dict[str, list[tuple[bytes, dict[str, object]]]]) -> list[int]:
    return [int(str(v["trade_id"])) for _, v in published[topics.TRADES.name]]


def test_broker_outage_loses_nothing(broker: EmbeddedBroker) -> None:
    async def run() -> None:
        pipeline = Pipeline({VENUE.id: VENUE}, bar_interval_ms=10**9)
        publisher = Publisher(kafka_for(broker.bootstrap), buffer_limit=100_000, chunk=500, inflight=2,
                              retry_backoff_max=0.5, request_timeout_ms=2_000, retry_backoff_ms=100)
        await publisher.start()
        try:
            for frame in _frames(0, PER_PHASE):
                await publisher.publish(pipeline.process(frame))
            assert await publisher.flush(30)
            before = _trade_ids(await read_all(broker.bootstrap, [topics.TRADES.name]))

            broker.stop()
            for frame in _frames(PER_PHASE, PER_PHASE):           # produced while the broker is down
                await publisher.publish(pipeline.process(frame))
            await asyncio.sleep(3)                                # long enough for sends to fail
            assert publisher.pending == PER_PHASE
            broker.start()
            await create_topics(broker.bootstrap)                 # memory-only broker: topics are gone
            for frame in _frames(2 * PER_PHASE, PER_PHASE):       # produced after the restart
                await publisher.publish(pipeline.process(frame))
            assert await publisher.flush(60), f"{publisher.pending} records never acknowledged"
            after = _trade_ids(await read_all(broker.bootstrap, [topics.TRADES.name]))
        finally:
            await publisher.stop(timeout=5)
        assert sorted(before) == list(range(PER_PHASE))
        assert set(after) == set(range(PER_PHASE, 3 * PER_PHASE))   # retried sends may repeat, never miss
        assert publisher.errors >= 1
        assert publisher.acked[topics.TRADES.name] == 3 * PER_PHASE

    asyncio.run(run())
