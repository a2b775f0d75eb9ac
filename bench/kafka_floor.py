"""The floor under the processor's cost per bar: Kafka client CPU per message, on the embedded broker.

    python -m bench.kafka_floor [--messages 200000]

The processor's speed targets (issue 12: <= 30 µs of CPU per one-trade bar) are set per message,
and every bar is one ``trade-bars`` record in and several records out (changelogs, candles,
indicators). This bench measures, side by side in one run, what the Kafka clients alone cost per
message, with no processing at all, on records the size of a trade bar:

- produce: ``AIOKafkaProducer.send`` one record at a time (what Faust and the agents do) vs
  ``send_batch`` of records grouped per partition;
- consume: a plain ``AIOKafkaConsumer.getmany`` loop vs a Faust agent that does nothing but take
  the events (``take_events``, as the processor's agents do, in its own process with the
  processor's embedded-broker settings).

Each figure is the CPU time (all threads of the process) between the first and the last message,
divided by the number of messages. The broker's own CPU is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from services.common.broker import EmbeddedBroker, free_port
from services.common.kafka import create_topics
from services.common.topics import Topic

PARTITIONS = 4


def bar_record(i: int) -> tuple[bytes, bytes]:
    """A one-trade bar's key and value (~400 bytes, as the ingestor writes them)."""
    asset = f"A{i % 65}"
    value = orjson.dumps({
        "id": f"x:{asset}-USDT-PERP:{i}:{i}:1", "exchange": "binance-usdm", "instrument": f"{asset}-USDT-PERP",
        "base": asset, "quote": "USDT", "market": "perp", "minute": 1_737_936_000_000 + i // 30 * 60_000,
        "count": 1, "volume": 0.5, "notional_usd": 51234.5, "buy_notional_usd": 51234.5, "open": 102469.0,
        "high": 102469.0, "low": 102469.0, "close": 102469.0, "first_trade_id": str(i), "last_trade_id": str(i),
        "ts_first": 1_737_936_000_000 + i, "ts_last": 1_737_936_000_000 + i, "ts_recv": 1_737_936_000_005 + i})
    return asset.encode(), value


async def produce_one_by_one(bootstrap: str, topic: str, n: int) -> float:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=1 << 20)
    await producer.start()
    try:
        records = [bar_record(i) for i in range(n)]
        started = time.process_time()
        pending = []
        for key, value in records:
            pending.append(await producer.send(topic, key=key, value=value))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
        return (time.process_time() - started) / n * 1e6
    finally:
        await producer.stop()


async def produce_batched(bootstrap: str, topic: str, n: int) -> float:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=1 << 20)
    await producer.start()
    try:
        records = [bar_record(i) for i in range(n)]
        partitioner = DefaultPartitioner()
        everyone = list(range(PARTITIONS))
        started = time.process_time()
        for i in range(0, n, 250):                 # one agent slice at a time
            groups: dict[int, list[tuple[bytes, bytes]]] = defaultdict(list)
            for key, value in records[i:i + 250]:
                groups[partitioner(key, everyone, everyone)].append((key, value))
            futures = []
            for partition, items in groups.items():
                batch = producer.create_batch()
                for key, value in items:
                    batch.append(key=key, value=value, timestamp=None)
                batch.close()
                futures.append(await producer.send_batch(batch, topic, partition=partition))
            await asyncio.gather(*futures)
        return (time.process_time() - started) / n * 1e6
    finally:
        await producer.stop()


async def consume_plain(bootstrap: str, topic: str, n: int) -> float:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    try:
        seen, started = 0, None
        while seen < n:
            for records in (await consumer.getmany(timeout_ms=500, max_records=5000)).values():
                if started is None:
                    started = time.process_time()
                seen += len(records)
        return (time.process_time() - (started or 0.0)) / n * 1e6
    finally:
        await consumer.stop()


def faust_child(bootstrap: str, topic: str, n: int, out: str) -> None:
    """A Faust worker whose one agent only takes the events, as the processor's agents take them."""
    import faust

    from services.common.kafka import EMBEDDED_FAUST_SETTINGS

    asyncio.set_event_loop(asyncio.new_event_loop())
    app = faust.App("bench-floor", broker=f"kafka://{bootstrap}", store="memory://", web_enabled=False,
                    datadir=out + ".d", consumer_auto_offset_reset="earliest", stream_wait_empty=False,
                    stream_buffer_maxsize=4096, **EMBEDDED_FAUST_SETTINGS)
    source = app.topic(topic, key_serializer="raw", value_serializer="raw")
    state: dict[str, Any] = {"seen": 0, "started": None}

    @app.agent(source)
    async def take(stream: Any) -> None:
        async for events in stream.take_events(2000, 0.05):
            if state["started"] is None:
                state["started"] = time.process_time()
            state["seen"] += len(events)
            if state["seen"] >= n:
                with open(out, "w") as f:
                    f.write(str((time.process_time() - state["started"]) / n * 1e6))
                os._exit(0)

    faust.Worker(app, loglevel="warning", quiet=True, redirect_stdouts=False,
                 override_logging=False).execute_from_commandline()


def consume_faust(bootstrap: str, topic: str, n: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result")
        proc = subprocess.Popen([sys.executable, "-m", "bench.kafka_floor", "--faust-child", bootstrap, topic,
                                 str(n), out], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            proc.wait(600)
        finally:
            if proc.poll() is None:
                proc.kill()
        with open(out) as f:
            return float(f.read())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--faust-child", nargs=4, metavar=("BOOTSTRAP", "TOPIC", "N", "OUT"))
    args = parser.parse_args()
    if args.faust_child:
        bootstrap, topic, n, out = args.faust_child
        faust_child(bootstrap, topic, int(n), out)
        return
    n = args.messages
    broker = EmbeddedBroker(port=free_port()).start()
    try:
        asyncio.run(create_topics(broker.bootstrap, [Topic(name, PARTITIONS, "asset", schema="")
                                                     for name in ("floor-a", "floor-b")]))
        one = asyncio.run(produce_one_by_one(broker.bootstrap, "floor-a", n))
        batched = asyncio.run(produce_batched(broker.bootstrap, "floor-b", n))
        plain = asyncio.run(consume_plain(broker.bootstrap, "floor-a", n))
        faust_us = consume_faust(broker.bootstrap, "floor-a", n)
    finally:
        broker.stop()
    print(f"CPU µs per message, {n} records of {len(bar_record(0)[1])} bytes, {PARTITIONS} partitions "
          f"(client process only)")
    print(f"  produce  send() one by one   {one:7.1f}")
    print(f"  produce  send_batch()        {batched:7.1f}   ({one / batched:.1f}x less)")
    print(f"  consume  getmany()           {plain:7.1f}")
    print(f"  consume  Faust take_events   {faust_us:7.1f}   ({faust_us / plain:.1f}x the plain consumer)")
    print(f"  floor of one bar in + 5 out via Faust/send(): {faust_us + 5 * one:.0f} µs; "
          f"via getmany/send_batch: {plain + 5 * batched:.0f} µs (target <= 30 µs per bar in all)")


if __name__ == "__main__":
    main()
