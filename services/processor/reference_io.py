"""Reference data I/O: every worker reads the whole ``assets`` topic (no consumer group), and
``cryptopulse assets load`` publishes an assets file to it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from services.common import topics
from services.common.assets import BUNDLED_ASSETS, AssetInfo, read_file
from services.common.events import InvalidEvent
from services.common.kafka import make_consumer, make_producer
from services.common.settings import KafkaSettings
from services.processor import metrics

if TYPE_CHECKING:
    from services.processor.context import Context

log = logging.getLogger("cryptopulse.processor.reference")

READY_TIMEOUT_S = 15.0


async def tail(ctx: Context, topic: topics.Topic, ready: asyncio.Event, ready_timeout: float,
               handle: Callable[[list[bytes | None]], None], what: str) -> None:
    """Read partition 0 of ``topic`` from its start, without a consumer group, for ever; ``ready``
    is set once the end seen at start-up is reached (or after ``ready_timeout``)."""
    tp = TopicPartition(topic.name, 0)
    consumer = make_consumer(ctx.kafka, group_id=None, enable_auto_commit=False)
    started = time.monotonic()
    try:
        await consumer.start()
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        while True:
            batches = await consumer.getmany(tp, timeout_ms=300, max_records=5000)
            handle([r.value for r in batches.get(tp, [])])
            if not ready.is_set() and (await consumer.position(tp) >= end
                                       or time.monotonic() - started > ready_timeout):
                ready.set()
                log.info("%s read", what)
    except (KafkaError, OSError) as exc:
        log.warning("%s unreadable (%s); going on without it", what, exc)
        ready.set()
    finally:
        await consumer.stop()


async def run_reference_reader(ctx: Context) -> None:
    """Tail ``cryptopulse.assets``; the bundled universe stands until the topic says otherwise."""
    def handle(values: list[bytes | None]) -> None:
        changed = False
        for value in values:
            changed |= apply_record(ctx, value)
        if changed:
            on_change(ctx)

    await tail(ctx, topics.ASSETS, ctx.reference_ready, READY_TIMEOUT_S, handle, "reference data (assets)")


async def run_history_reader(ctx: Context) -> None:
    """Read ``cryptopulse.candle-history`` to its end and seed the indicators before the sector
    stage processes its first live bucket (it waits on ``ctx.history_ready``); later history
    records are seeded as they come (the engine ignores candles older than a series' last)."""
    await tail(ctx, topics.CANDLE_HISTORY, ctx.history_ready, READY_TIMEOUT_S * 4,
               lambda values: seed_history(ctx, values), "candle history")


def seed_history(ctx: Context, values: list[bytes | None]) -> None:
    candles = []
    for value in values:
        try:
            candle = orjson.loads(value) if value else None
            if not isinstance(candle, dict):
                raise ValueError("not a JSON object")
            if isinstance(candle.get("open_time"), bool) or not isinstance(candle.get("open_time"), int):
                raise ValueError("open_time must be an integer (epoch ms)")
            candles.append(candle)
        except (ValueError, orjson.JSONDecodeError) as exc:
            ctx.send_deadletters("candle_history", [(value, f"bad history candle: {exc}")])
            metrics.EVENTS.labels("candle_history", "deadletter").inc()
    candles.sort(key=lambda c: (str(c.get("series")), str(c.get("interval")), c["open_time"]))
    for candle in candles:
        try:
            ctx.signals.seed_history(candle)
            metrics.EVENTS.labels("candle_history", "applied").inc()
        except (ValueError, KeyError, TypeError, OverflowError) as exc:   # any field a poison pill may hold
            ctx.send_deadletters("candle_history", [(orjson.dumps(candle), str(exc))])
            metrics.EVENTS.labels("candle_history", "deadletter").inc()


def apply_record(ctx: Context, value: bytes | None) -> bool:
    try:
        info = AssetInfo.from_dict(orjson.loads(value) if value else None)
    except (InvalidEvent, orjson.JSONDecodeError) as exc:
        ctx.send_deadletters("assets", [(value, str(exc))])
        metrics.EVENTS.labels("assets", "deadletter").inc()
        return False
    metrics.EVENTS.labels("assets", "applied").inc()
    return ctx.universe.apply(info)


def on_change(ctx: Context) -> None:
    ctx.assets.on_universe_change()
    ctx.sectors.on_universe_change()
    for hook in ctx.universe_hooks:
        hook()


async def load_assets(kafka: KafkaSettings, path: Path = BUNDLED_ASSETS) -> int:
    """Publish one record per asset of ``path`` to the assets topic; returns how many."""
    records, _names = read_file(path)
    producer = make_producer(kafka)
    await producer.start()
    try:
        for info in records:
            await producer.send(topics.ASSETS.name, key=info.asset.encode(), value=orjson.dumps(info.to_dict()))
        await producer.flush()
    finally:
        await producer.stop()
    return len(records)


def load_assets_sync(kafka: KafkaSettings, path: Path = BUNDLED_ASSETS) -> int:
    return asyncio.run(load_assets(kafka, path))
