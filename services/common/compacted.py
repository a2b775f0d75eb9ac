"""Read a compacted topic to its end as a table (latest value per key), without a consumer group."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from services.common.kafka import make_consumer, make_producer
from services.common.settings import KafkaSettings
from services.common.topics import Topic


async def read_table(kafka: KafkaSettings, topic: Topic, prefix: str = "", timeout: float = 30.0) -> dict[str, Any]:
    """key -> latest decoded JSON value (keys starting with ``prefix``; tombstones and non-JSON
    values drop the key). Reads on past the reported end until a fetch returns nothing: the
    embedded broker may report an end short of the true one (BROKER_NOTES.md)."""
    consumer = make_consumer(kafka, group_id=None, enable_auto_commit=False)
    table: dict[str, Any] = {}
    deadline = time.monotonic() + timeout
    await consumer.start()
    try:
        parts = [TopicPartition(topic.name, p) for p in range(topic.partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        while time.monotonic() < deadline:
            batches = await consumer.getmany(*parts, timeout_ms=200, max_records=10_000)
            records = [r for batch in batches.values() for r in batch]
            for record in records:
                key = record.key.decode(errors="replace") if record.key else ""
                if not key.startswith(prefix):
                    continue
                try:
                    table[key] = orjson.loads(record.value) if record.value is not None else None
                except orjson.JSONDecodeError:
                    table[key] = None
                if table[key] is None:
                    del table[key]
            if not records and all([await consumer.position(tp) >= ends[tp] for tp in parts]):
                break
    finally:
        await consumer.stop()
    return table


async def publish(kafka: KafkaSettings, records: list[tuple[Topic, str, dict[str, Any]]]) -> int:
    """Send (topic, key, value) records and wait until every one is acknowledged."""
    producer = make_producer(kafka)
    await producer.start()
    try:
        for topic, key, value in records:
            await producer.send(topic.name, key=key.encode(), value=orjson.dumps(value))
        await producer.flush()
    finally:
        await producer.stop()
    return len(records)


async def send_batched(producer: AIOKafkaProducer, topic: Topic, items: list[tuple[str, dict[str, Any]]]) -> None:
    """Send keyed JSON values in record batches, one per partition at a time (the partition the
    default partitioner gives each key, so consumers see what ``send`` would have produced), and
    wait for every batch to be acknowledged. Several times faster than a ``send`` per record."""
    partitions = sorted(await producer.partitions_for(topic.name))
    pending: dict[int, Any] = {}
    where: dict[str, int] = {}
    futures = []
    for key, value in items:
        raw_key = key.encode()
        partition = where.get(key)
        if partition is None:
            partition = where[key] = DefaultPartitioner()(raw_key, partitions, partitions)
        batch = pending.get(partition)
        if batch is None:
            batch = pending[partition] = producer.create_batch()
        if batch.append(key=raw_key, value=orjson.dumps(value), timestamp=None) is None:
            futures.append(await producer.send_batch(batch, topic.name, partition=partition))
            batch = pending[partition] = producer.create_batch()
            batch.append(key=raw_key, value=orjson.dumps(value), timestamp=None)
    for partition, batch in pending.items():
        if batch.record_count():
            futures.append(await producer.send_batch(batch, topic.name, partition=partition))
    await asyncio.gather(*futures)
