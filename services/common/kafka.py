"""Kafka clients configured once for every service: embedded broker or a real cluster.

Embedded-mode differences (documented in the README, see BROKER_NOTES.md):
- no idempotent producer (Tansu rejects InitProducerId), so ``enable_idempotence`` is off;
- group joins wait the full rebalance timeout, so Faust gets short rebalance/session timeouts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError

from services.common.errors import StartupError
from services.common.settings import KafkaSettings
from services.common.topics import ALL_TOPICS, Topic

EMBEDDED_FAUST_SETTINGS: dict[str, Any] = {
    "broker_rebalance_timeout": 3.0,
    "broker_session_timeout": 10.0,
    "broker_heartbeat_interval": 1.0,
}


def producer_kwargs(kafka: KafkaSettings, **overrides: Any) -> dict[str, Any]:
    """Durable by default: acks=all, idempotence where the broker supports it, batched with linger."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap,
        "acks": "all",
        "enable_idempotence": kafka.idempotence,
        "linger_ms": 5,
        "max_batch_size": 256 * 1024,
        "request_timeout_ms": 30_000,
    }
    kwargs.update(overrides)
    return kwargs


def consumer_kwargs(kafka: KafkaSettings, **overrides: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
    }
    if kafka.embedded:
        kwargs.update(session_timeout_ms=10_000, heartbeat_interval_ms=1_000, rebalance_timeout_ms=3_000)
    kwargs.update(overrides)
    return kwargs


def faust_broker_settings(kafka: KafkaSettings) -> dict[str, Any]:
    """Settings for ``faust.App(...)``: the broker URL and, embedded only, short group timeouts."""
    settings: dict[str, Any] = {
        "broker": ",".join(f"kafka://{host}" for host in kafka.bootstrap.split(",")),
        "producer_acks": -1,
    }
    if kafka.embedded:
        settings.update(EMBEDDED_FAUST_SETTINGS)
    return settings


def make_producer(kafka: KafkaSettings, **overrides: Any) -> AIOKafkaProducer:
    return AIOKafkaProducer(**producer_kwargs(kafka, **overrides))


def make_consumer(kafka: KafkaSettings, *topics: str, **overrides: Any) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(*topics, **consumer_kwargs(kafka, **overrides))


class _QuietConnectionErrors:
    """Silence aiokafka's per-attempt connection errors while we poll; we report once ourselves."""

    def __enter__(self) -> None:
        self.logger = logging.getLogger("aiokafka")
        self.level = self.logger.level
        self.logger.setLevel(logging.CRITICAL)

    def __exit__(self, *exc: object) -> None:
        self.logger.setLevel(self.level)


async def wait_for_kafka(bootstrap: str, timeout: float = 20.0) -> None:
    """Return once ``bootstrap`` answers metadata, else raise a one-line :class:`StartupError`."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    quiet = _QuietConnectionErrors()
    while time.monotonic() < deadline:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
        try:
            with quiet:
                await admin.start()
            await admin.close()
            return
        except (KafkaError, OSError) as exc:
            last = exc
            try:
                await admin.close()
            except Exception:  # closing a half-started client may fail; it holds nothing then
                pass
            await asyncio.sleep(0.5)
    raise StartupError(
        f"Kafka at {bootstrap} is unreachable ({type(last).__name__ if last else 'timeout'}): check "
        "CRYPTOPULSE_KAFKA_BOOTSTRAP / --kafka, or unset it to use the embedded broker"
    )


async def create_topics(bootstrap: str, topics: Iterable[Topic] = ALL_TOPICS,
                        replication_factor: int = 1) -> list[str]:
    """Create the topics that do not exist yet; returns the names created (idempotent)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    try:
        await admin.start()
    except KafkaConnectionError as exc:
        raise StartupError(f"Kafka at {bootstrap} is unreachable: {exc}") from exc
    try:
        existing = set(await admin.list_topics())
        wanted = [t for t in topics if t.name not in existing]
        if not wanted:
            return []
        new = [
            NewTopic(name=t.name, num_partitions=t.partitions, replication_factor=replication_factor,
                     topic_configs=t.config)
            for t in wanted
        ]
        try:
            await admin.create_topics(new)
        except TopicAlreadyExistsError:
            pass
        return [t.name for t in wanted]
    finally:
        await admin.close()


async def describe_topics(bootstrap: str) -> dict[str, int]:
    """Topic name -> partition count, for every topic on the cluster."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    try:
        await admin.start()
    except KafkaConnectionError as exc:
        raise StartupError(f"Kafka at {bootstrap} is unreachable: {exc}") from exc
    try:
        names = await admin.list_topics()
        described = await admin.describe_topics(names)
        return {d["topic"]: len(d["partitions"]) for d in described}
    finally:
        await admin.close()
