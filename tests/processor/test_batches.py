"""The processor's batched producing (agents.Batches, agents.Partitions) against the real broker:
a keyed output lands on exactly the partition aiokafka's ``send`` chooses, records keep their
order per partition, and a batch fuller than one record batch is split, not lost."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from services.common import topics
from services.common.broker import EmbeddedBroker
from services.processor.agents import Batches, Partitions

TOPIC = topics.INDICATORS.name


async def _read_all(bootstrap: str, count: int) -> list[tuple[int, bytes, bytes]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(TOPIC, p) for p in range(topics.INDICATORS.partitions)]
        consumer.assign(tps)
        out: list[tuple[int, bytes, bytes]] = []
        for _ in range(100):
            for tp, records in (await consumer.getmany(timeout_ms=200)).items():
                out += [(tp.partition, r.key, r.value) for r in records]
            if len(out) >= count:
                break
        return out
    finally:
        await consumer.stop()


def test_batched_outputs_land_where_send_puts_them_in_order(broker: EmbeddedBroker) -> None:
    keys = [f"SERIES{i}:1m".encode() for i in range(40)]

    async def run() -> tuple[dict[bytes, int], list[tuple[int, bytes, bytes]], int]:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, max_batch_size=4096)
        await producer.start()
        try:
            chosen = {}
            for key in keys:           # what plain send() does, one record per key
                meta = await (await producer.send(TOPIC, key=key, value=b"probe"))
                chosen[key] = meta.partition
            partitions = Partitions(limit=16)     # smaller than the keys: the memory starts afresh
            batches = Batches(producer, partitions)
            for round_ in range(3):
                for key in keys:
                    value = b"%d|" % round_ + b"x" * 300        # 40 x 300 B > one 4 KB batch
                    partition = batches.partition(TOPIC, key, value)
                    assert partition is not None
                    await batches.add(TOPIC, partition, key, value)
            futures = await batches.send()
            await asyncio.gather(*futures)
            return chosen, await _read_all(broker.bootstrap, len(keys) * 4), len(partitions.known)
        finally:
            await producer.stop()

    chosen, records, remembered = asyncio.run(run())
    assert remembered <= 16
    batched = [(p, k, v) for p, k, v in records if v != b"probe"]
    assert len(batched) == 3 * len(keys)
    assert all(chosen[k] == p for p, k, _ in batched)
    for key in keys:
        rounds = [v.split(b"|")[0] for _, k, v in batched if k == key]
        assert rounds == [b"0", b"1", b"2"]
