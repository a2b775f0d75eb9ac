"""The bar packer: ``trade-bars`` read with a plain consumer group, republished packed per partition.

Why: see ``packing.py`` (Faust's cost per delivered message is far above a bar's). Every worker
runs one packer in the consumer group ``<app id>-bar-packer``, so two workers split the source
partitions; whichever worker owns partition p of the pack topic (co-partitioned with the
``asset-buckets`` table by Faust's assignor) applies the packs of source partition p.

Delivery is at least once: the source offsets are committed only after the packs holding them are
acknowledged by the broker, so a crash between the two repacks a few records; the asset stage
counts a bar it already holds as a duplicate (its bucket keeps the bar ids) and changes nothing.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    ConsumerRecord,
    TopicPartition,
)
from aiokafka.errors import CommitFailedError, IllegalStateError

from services.common import topics
from services.common.kafka import create_topics, make_consumer, make_producer
from services.common.settings import KafkaSettings
from services.processor import metrics
from services.processor.context import Context, internal_topic_name
from services.processor.packing import chunks, pack

log = logging.getLogger("cryptopulse.processor.packer")

FETCH_RECORDS = 5000          # records per getmany at most


def pack_topic(name: str) -> topics.Topic:
    """The internal topic of packs: as many partitions as ``trade-bars`` and its retention, so no
    pack expires before the bars it holds would have."""
    return topics.Topic(name=name, partitions=topics.TRADE_BARS.partitions, key="none (partition = source partition)",
                        schema="", retention_ms=topics.TRADE_BARS.retention_ms,
                        about="trade-bars records packed per partition (binary, services/processor/packing.py)")


RETRY_S = 2.0


async def keep_packing(ctx: Context, topic: topics.Topic) -> None:
    """Run the worker's packer until cancelled, restarting it after a failure (logged: without it
    the worker applies no bar at all)."""
    group_id = internal_topic_name(ctx.settings, "bar-packer")
    while True:
        try:
            await run_packer(ctx.kafka, group_id, topic, ctx.settings.processor_fetch_max_wait_ms)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("bar packer failed; restarting in %.0f s", RETRY_S)
            await asyncio.sleep(RETRY_S)


class _LagGauges(ConsumerRebalanceListener):  # type: ignore[misc]
    """The packer's consumer lag per trade-bars partition, exported only while this worker owns it."""

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        for tp in revoked:
            metrics.drop_lag(tp.topic, tp.partition)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        for tp in assigned:
            metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition))


async def run_packer(kafka: KafkaSettings, group_id: str, topic: topics.Topic, fetch_max_wait_ms: int) -> None:
    """Pack ``trade-bars`` into ``topic`` until cancelled."""
    await create_topics(kafka, [topic])
    consumer = make_consumer(kafka, group_id=group_id, enable_auto_commit=False, fetch_max_wait_ms=fetch_max_wait_ms)
    consumer.subscribe([topics.TRADE_BARS.name], listener=_LagGauges())
    producer = make_producer(kafka, linger_ms=1, max_batch_size=1 << 20, max_request_size=8 << 20)
    await producer.start()
    await consumer.start()
    try:
        while True:
            fetched = await consumer.getmany(timeout_ms=500, max_records=FETCH_RECORDS)
            await _repack(consumer, producer, topic.name, fetched)
    finally:
        await consumer.stop()
        await producer.stop()


async def _repack(consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, name: str,
                  fetched: dict[TopicPartition, list[ConsumerRecord]]) -> None:
    """Send the packs of one fetch, wait for every one of them, then commit their source offsets
    (a commit refused by a rebalance only means the new owner packs those records again)."""
    futures, offsets = [], {}
    for tp, messages in fetched.items():
        if not messages:
            continue
        last = messages[-1].offset
        highwater = consumer.highwater(tp)
        caught_up = highwater is not None and last + 1 >= highwater
        runs = list(chunks([(m.key, m.value) for m in messages]))
        for i, run in enumerate(runs):
            value = pack(run, caught_up and i == len(runs) - 1)
            futures.append(await producer.send(name, value=value, partition=tp.partition))
        offsets[tp] = last + 1
        metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, (highwater or 0) - last - 1))
    if futures:
        await asyncio.gather(*futures)
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            log.info("packer: commit after a rebalance refused (%s); the records are packed again", exc)
