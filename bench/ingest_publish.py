"""Ingestor publish benchmark: sustained publishing into the embedded broker from one process.

    python -m bench.ingest_publish [--events 300000] [--naive-events 100000]

Side by side in one run, on the same pre-encoded trade records (as the pipeline emits them,
keyed by instrument, ~330 bytes): the ingestor's :class:`Publisher` (batches per partition via
``create_batch``/``send_batch``, several rounds in flight) vs. the naive loop of
``await producer.send()`` per message. Both wait for every acknowledgement (acks=all). Prints
events/s of wall time and events per CPU-second of this process (the broker runs in its own
process), and the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import orjson
from aiokafka import AIOKafkaProducer

from services.common import topics
from services.common.broker import EmbeddedBroker, free_port
from services.common.events import Trade
from services.common.kafka import create_topics, producer_kwargs
from services.common.settings import KafkaSettings
from services.ingestor.pipeline import Record
from services.ingestor.producer import Publisher

SYMBOLS = ("BTC", "ETH", "SOL", "RENDER", "PEPE", "DOGE", "XRP", "ADA", "SUI", "LINK", "AVAX", "TON")


def records(count: int) -> list[Record]:
    out: list[Record] = []
    for i in range(count):
        base = SYMBOLS[i % len(SYMBOLS)]
        trade = Trade(exchange="binance-usdm", symbol=f"{base}USDT", instrument=f"{base}-USDT-PERP", base=base,
                      quote="USDT", market="perp", side="buy" if i % 3 else "sell", price=101_681.4 + i % 97,
                      size=0.012, notional_usd=1220.18, trade_id=str(2_541_000_123 + i),
                      ts=1_737_975_600_000 + i, ts_recv=1_737_975_600_020 + i)
        out.append((topics.TRADES.name, trade.instrument.encode(), orjson.dumps(trade)))
    return out


async def bench_publisher(kafka: KafkaSettings, data: list[Record], per_call: int) -> tuple[float, float]:
    publisher = Publisher(kafka)
    await publisher.start()
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        for start in range(0, len(data), per_call):
            await publisher.publish(data[start:start + per_call])
        assert await publisher.flush(120), "not every record was acknowledged"
        return time.perf_counter() - wall, time.process_time() - cpu
    finally:
        await publisher.stop()


async def bench_naive(kafka: KafkaSettings, data: list[Record]) -> tuple[float, float]:
    producer = AIOKafkaProducer(**producer_kwargs(kafka))
    await producer.start()
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        futures = [await producer.send(topic, value=value, key=key) for topic, key, value in data]
        await asyncio.gather(*futures)
        return time.perf_counter() - wall, time.process_time() - cpu
    finally:
        await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--naive-events", type=int, default=100_000)
    parser.add_argument("--per-call", type=int, default=2, help="records per publish() call (one frame's worth)")
    args = parser.parse_args()
    with EmbeddedBroker(port=free_port()) as broker:
        asyncio.run(create_topics(broker.bootstrap))
        kafka = broker.client_settings()
        naive_data, data = records(args.naive_events), records(args.events)
        naive_wall, naive_cpu = asyncio.run(bench_naive(kafka, naive_data))
        wall, cpu = asyncio.run(bench_publisher(kafka, data, args.per_call))
    rows = [("naive await send() loop", args.naive_events, naive_wall, naive_cpu),
            (f"Publisher (send_batch, {args.per_call}/call)", args.events, wall, cpu)]
    print(f"{'producer':36} {'events':>8} {'events/s (wall)':>16} {'events/CPU-s':>13}")
    for name, n, w, c in rows:
        print(f"{name:36} {n:>8} {n / w:>16,.0f} {n / c:>13,.0f}")
    print(f"ratio Publisher / naive: {(args.events / wall) / (args.naive_events / naive_wall):.1f}x wall, "
          f"{(args.events / cpu) / (args.naive_events / naive_cpu):.1f}x per CPU-second "
          f"(target >= 150k events/s per core)")


if __name__ == "__main__":
    main()
