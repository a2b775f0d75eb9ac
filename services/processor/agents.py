"""Faust agents, tables and timers of the processor: the async shell around the pure stages.

Topology (see docs/semantics.md and the README's architecture section):
- ``trade-bars`` (4 partitions, key asset) -> asset stage -> ``asset-stats``; the changed minute
  buckets go to the single-partition internal topic ``<app>-asset-minutes`` (the sector stage).
- ``liquidations`` (4 partitions) -> checked -> internal ``<app>-liquidations`` (1 partition) ->
  liquidation totals.
Tables are written through ``send_changelog`` with the partition of the input message, so each
table partition is co-partitioned with its input and restored with it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import faust
import orjson

from services.common import topics
from services.common.codec import dead_letter, now_ms
from services.common.events import InvalidEvent, Liquidation
from services.processor import metrics
from services.processor.app import Context, internal_topic_name
from services.processor.reference_io import run_reference_reader
from services.processor.validate import parse_liquidation

TableChange = tuple[int, str, bytes | None]


def write_table(table: Any, changes: Iterable[TableChange]) -> None:
    """Apply absolute changes to a table's local store and its changelog (None deletes)."""
    data = table.data
    for partition, key, value in changes:
        raw_key = key.encode()
        if value is None:
            data.pop(raw_key, None)
        else:
            data[raw_key] = value
        table.send_changelog(partition, raw_key, value)


def table_items(table: Any) -> list[tuple[str, bytes]]:
    return [(k.decode() if isinstance(k, bytes) else str(k), v) for k, v in table.data.items()]


def attach(app: faust.App, ctx: Context) -> None:
    settings = ctx.settings
    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    bars_topic = app.topic(topics.TRADE_BARS.name, **raw)
    liqs_topic = app.topic(topics.LIQUIDATIONS.name, **raw)
    minutes_topic = app.topic(internal_topic_name(settings, "asset-minutes"), partitions=1, internal=True, **raw)
    liqs_one = app.topic(internal_topic_name(settings, "liquidations"), partitions=1, internal=True, **raw)
    deadletter_topic = app.topic(topics.DEADLETTER.name, **raw)
    out = {t.name: app.topic(t.name, **raw) for t in topics.DERIVED_TOPICS}

    as_bytes: dict[str, Any] = {"key_type": bytes, "value_type": bytes}
    asset_table = app.Table("asset-buckets", partitions=topics.TRADE_BARS.partitions, **as_bytes)
    liq_table = app.Table("liquidations", partitions=1, **as_bytes)

    def send_deadletters(stream: str, items: Iterable[tuple[bytes | None, str]]) -> None:
        for message, reason in items:
            letter = dead_letter(f"processor:{stream}", message if message is not None else b"", reason)
            deadletter_topic.send_soon(key=letter.source.encode(), value=orjson.dumps(letter))
            metrics.DEADLETTERS.labels(stream).inc()

    def publish(topic: topics.Topic, key: str, value: dict[str, Any], ts_recv: int) -> None:
        emit = now_ms()
        value["ts_emit"] = emit
        out[topic.name].send_soon(key=key.encode(), value=orjson.dumps(value))
        metrics.UPDATES.labels(topic.name).inc()
        if ts_recv:
            metrics.EVENT_LAG.observe(max(0.0, (emit - ts_recv) / 1000))

    def flush() -> None:
        now = time.monotonic()
        for asset, value in ctx.assets.due(now):
            publish(topics.ASSET_STATS, asset, value, ctx.assets.ts_recv.get(asset, 0))
        for key, value in ctx.liquidations.due(now):
            publish(topics.LIQUIDATION_TOTALS, key, value, ctx.liquidations.max_ts_recv)
        for hook in ctx.extra.get("flush_hooks", []):
            hook(now)

    @asset_table.on_recover
    async def _recover_assets() -> None:
        ctx.assets.rebuild(table_items(asset_table))
        metrics.STATE_KEYS.labels("asset-buckets").set(len(asset_table.data))

    @liq_table.on_recover
    async def _recover_liquidations() -> None:
        ctx.liquidations.rebuild(v for _, v in table_items(liq_table))
        metrics.STATE_KEYS.labels("liquidations").set(len(liq_table.data))

    @app.agent(bars_topic)
    async def trade_bars(stream: Any) -> None:
        async for events in stream.take_events(settings.processor_batch_size, settings.processor_batch_within):
            await ctx.reference_ready.wait()
            started = time.perf_counter()
            batch = ctx.assets.apply((e.value, e.message.partition) for e in events)
            write_table(asset_table, batch.table)
            for asset, record in batch.records:
                minutes_topic.send_soon(key=asset.encode(), value=record)
            send_deadletters("trade_bars", batch.deadletters)
            for outcome, n in batch.outcomes.items():
                metrics.EVENTS.labels("trade_bars", outcome).inc(n)
            metrics.TRADES.inc(batch.trades)
            flush()
            metrics.PROCESSING.labels("trade_bars").observe(time.perf_counter() - started)

    @app.agent(liqs_topic)
    async def liquidations(stream: Any) -> None:
        async for events in stream.take_events(1000, 0.02):
            await ctx.reference_ready.wait()
            bad = []
            for event in events:
                try:
                    liq = parse_liquidation(event.value, ctx.universe)
                except InvalidEvent as exc:
                    bad.append((event.value, str(exc)))
                    continue
                liqs_one.send_soon(key=b"all", value=orjson.dumps(liq))
            send_deadletters("liquidations", bad)
            if bad:
                metrics.EVENTS.labels("liquidations", "deadletter").inc(len(bad))

    @app.agent(liqs_one)
    async def liquidation_totals(stream: Any) -> None:
        async for events in stream.take_events(1000, 0.02):
            started = time.perf_counter()
            liqs = [Liquidation.from_dict(orjson.loads(e.value)) for e in events]
            changes, outcomes = ctx.liquidations.apply(liqs)
            write_table(liq_table, changes)
            for outcome, n in outcomes.items():
                metrics.EVENTS.labels("liquidations", outcome).inc(n)
            flush()
            metrics.PROCESSING.labels("liquidations").observe(time.perf_counter() - started)

    @app.timer(0.1)
    async def _conflation_timer() -> None:
        flush()

    @app.task
    async def _reference() -> None:
        await run_reference_reader(ctx)

    ctx.extra["minutes_topic"] = minutes_topic
    ctx.extra["flush"] = flush
    ctx.extra["send_deadletters"] = send_deadletters
