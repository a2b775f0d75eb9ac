"""Reading back what the ingestor published, and validating it against schemas/."""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from typing import Any

import jsonschema
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.common import topics
from services.common.broker import client_settings
from services.common.settings import KafkaSettings

RAW = (topics.TRADES, topics.LIQUIDATIONS, topics.TRADE_BARS, topics.TRADE_GAPS, topics.DEADLETTER)


def kafka_for(bootstrap: str) -> KafkaSettings:
    """External-broker settings for the embedded test broker (no idempotent producer, no compression there)."""
    return client_settings(bootstrap)


async def read_all(bootstrap: str, names: Iterable[str] = tuple(t.name for t in RAW),
                   timeout_ms: int = 20_000) -> dict[str, list[tuple[bytes, dict[str, Any]]]]:
    """Every message of ``names`` up to their current end offsets: topic -> [(key, value)]."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                request_timeout_ms=timeout_ms)
    await consumer.start()
    try:
        partitions = [TopicPartition(name, p) for name in names
                      for p in sorted(consumer.partitions_for_topic(name) or await _partitions(consumer, name))]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        out: dict[str, list[tuple[bytes, dict[str, Any]]]] = {name: [] for name in names}
        remaining = {tp for tp in partitions if ends[tp] > 0}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=timeout_ms)
            if not batches:
                raise TimeoutError(f"no messages within {timeout_ms} ms; still expecting {remaining}")
            for tp, messages in batches.items():
                out[tp.topic].extend((m.key or b"", orjson.loads(m.value or b"null")) for m in messages)
                if messages and messages[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
        return out
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, name: str) -> set[int]:
    await consumer._client.force_metadata_update()  # the public API has no explicit refresh
    return consumer.partitions_for_topic(name) or set()


@cache
def validator(topic_name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads(topics.by_name(topic_name).schema_path.read_text()))


def assert_valid(published: dict[str, list[tuple[bytes, dict[str, Any]]]]) -> None:
    for name, messages in published.items():
        check = validator(name)
        for _, value in messages:
            errors = list(check.iter_errors(value))
            assert not errors, f"{name}: {value} violates its schema: {errors[0].message}"
