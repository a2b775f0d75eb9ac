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

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any, cast

import faust
import orjson
from aiokafka import TopicPartition

from services.common import topics
from services.common.codec import dead_letter, now_ms
from services.common.events import InvalidEvent, Liquidation
from services.common.kafka import make_consumer
from services.common.settings import KafkaSettings
from services.processor import metrics
from services.processor.context import Context, internal_topic_name
from services.processor.reference_io import run_history_reader, run_reference_reader
from services.processor.signals import SignalEngine
from services.processor.stage_assets import pack_records
from services.processor.timeutil import LIQUIDATION_WINDOWS
from services.processor.validate import parse_liquidation

TableChange = tuple[int, str, bytes | None]
log = logging.getLogger("cryptopulse.processor")
DERIVED_TOPICS = (topics.ASSET_STATS, topics.SECTOR_CAPS, topics.LIQUIDATION_TOTALS, topics.CANDLES,
                  topics.INDICATORS, topics.ALERTS)


def alert_kinds() -> list[str]:
    """The alert kinds of the alert schema (the bounded ``kind`` label)."""
    schema = orjson.loads(topics.ALERTS.schema_path.read_bytes())
    return list(schema["properties"]["kind"]["enum"])


class Sender:
    """Produces straight through the worker's aiokafka producer and keeps the delivery futures.

    Faust's buffered ``send_soon`` futures were seen to stay pending on this broker, and its flush
    before an offset commit gives up after 0.1 s without a delivery; the agents instead wait for
    every record of a batch (changelog and internal topics) before the batch is acknowledged.
    """

    def __init__(self, app: faust.App) -> None:
        self.app = app
        self.futures: list[asyncio.Future[Any]] = []

    async def send(self, topic: str, key: bytes, value: bytes | None, partition: int | None = None) -> None:
        producer = self.app.producer._ensure_producer()  # type: ignore[attr-defined]
        self.futures.append(await producer.send(topic, value=value, key=key, partition=partition))

    async def write_table(self, table: Any, changes: Iterable[TableChange]) -> None:
        """Apply absolute changes to a table's local store and its changelog (None deletes)."""
        data = table.data
        name = table.changelog_topic.get_topic_name()
        for partition, key, value in changes:
            raw_key = key.encode()
            if value is None:
                data.pop(raw_key, None)
            else:
                data[raw_key] = value
            await self.send(name, raw_key, value, partition)

    async def delivered(self) -> None:
        futures, self.futures = self.futures, []
        if futures:
            await asyncio.gather(*futures)


RELOAD_TIMEOUT_S = 120.0
BAR_SLICE = 250        # input records applied between two yields to the event loop (~10-25 ms here)
FLUSH_SLICE = 200      # outputs computed between two yields of a flush
SECTOR_SLICE = 8       # sector values (each sums every member) computed between two yields
MINUTES_SLICE_BYTES = 64 * 1024   # minute records (packed ~250 per message) applied between two yields


def slices_by_size(values: list[bytes], budget: int) -> Iterable[list[bytes]]:
    """Consecutive runs of messages of about ``budget`` bytes (at least one message each)."""
    run: list[bytes] = []
    size = 0
    for value in values:
        if run and size + len(value) > budget:
            yield run
            run, size = [], 0
        run.append(value)
        size += len(value)
    if run:
        yield run


async def read_changelog(kafka: KafkaSettings, tps: list[TopicPartition]) -> dict[bytes, bytes]:
    """The latest value per key of changelog partitions, read from their start with a plain consumer.

    Faust's own recovery stops at the end offset ListOffsets reports; the embedded broker reports
    the base offset of the last record batch + 1 (not the log end), so a restarted worker recovered
    a changelog without its last batch (or, for a one-batch changelog, nothing). Reading until the
    position passes that end returns the whole last batch, so this is exact on both brokers.
    """
    if not tps:
        return {}
    consumer = make_consumer(kafka, group_id=None, enable_auto_commit=False)
    data: dict[bytes, bytes] = {}
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        pending = {tp for tp in tps if ends[tp] > 0}
        deadline = time.monotonic() + RELOAD_TIMEOUT_S
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"changelog {sorted(pending)} not read within {RELOAD_TIMEOUT_S} s")
            for records in (await consumer.getmany(*pending, timeout_ms=300, max_records=20_000)).values():
                for record in records:
                    if record.value is None:
                        data.pop(record.key, None)
                    else:
                        data[record.key] = record.value
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()
    return data


BOOK_KEY = "__book__"


def signal_state_changes(engine: SignalEngine, closed: Iterable[str], written: dict[str, bytes],
                         book: bool = True) -> list[tuple[str, bytes]]:
    """(key, state) to store after a flush: every series that closed a candle, and the book
    (edge flags, liquidation figures) when it differs from what was written last."""
    out = []
    for key in sorted(closed):
        state = engine.series_state(key)
        if state is not None:
            out.append((key, orjson.dumps(state)))
    if book:
        value = orjson.dumps(engine.book_state())
        if written.get(BOOK_KEY) != value:
            out.append((BOOK_KEY, value))
    return out


def load_signal_state(engine: SignalEngine, items: Iterable[tuple[str, bytes]]) -> int:
    """Restore the engine from its table; returns how many series states were loaded. A series this
    worker has already taken further (it closed candles while the table was elsewhere, during a
    rebalance) keeps its own state."""
    loaded = 0
    for key, raw in items:
        try:
            state = orjson.loads(raw)
            if key == BOOK_KEY:
                engine.load_book_state(state)
                continue
            current = engine.series_state(key)
            if current is not None and (current["last_open_time"] or 0) > (state["last_open_time"] or 0):
                continue
            engine.load_series_state(key, state)
            loaded += 1
        except (ValueError, KeyError, TypeError) as exc:   # an older state format: start that key afresh
            log.warning("signal state %s not restored: %s", key, exc)
    return loaded


def table_items(table: Any) -> list[tuple[str, bytes]]:
    return [(k.decode() if isinstance(k, bytes) else str(k), v) for k, v in table.data.items()]


async def shorten_fetch_wait(app: faust.App, wait_ms: int) -> None:
    """Set the fetch max-wait of Faust's consumer, once it exists (Faust passes a fixed 1500 ms;
    a broker that holds a fetch for its full max-wait adds that much latency to every update)."""
    for _ in range(600):
        thread = getattr(app.consumer, "_thread", None)
        consumer = getattr(thread, "_consumer", None)
        fetcher = getattr(consumer, "_fetcher", None)
        if fetcher is not None:
            fetcher._fetch_max_wait_ms = wait_ms
            return
        await asyncio.sleep(0.1)


def attach(app: faust.App, ctx: Context) -> None:
    settings = ctx.settings
    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    bars_topic = app.topic(topics.TRADE_BARS.name, **raw)
    liqs_topic = app.topic(topics.LIQUIDATIONS.name, **raw)
    minutes_topic = app.topic(internal_topic_name(settings, "asset-minutes"), partitions=1, internal=True, **raw)
    liqs_one = app.topic(internal_topic_name(settings, "liquidations"), partitions=1, internal=True, **raw)
    deadletter_topic = app.topic(topics.DEADLETTER.name, **raw)

    as_bytes: dict[str, Any] = {"key_type": bytes, "value_type": bytes}
    asset_table = app.Table("asset-buckets", partitions=topics.TRADE_BARS.partitions, **as_bytes)
    liq_table = app.Table("liquidations", partitions=1, **as_bytes)
    sector_table = app.Table("sector-buckets", partitions=1, **as_bytes)
    # one partition, so Faust's assignor puts it with the single-partition stages that feed the engine
    signal_table = app.Table("signals", partitions=1, **as_bytes)
    signal_written: dict[str, bytes] = {}

    def send_deadletters(stream: str, items: Iterable[tuple[bytes | None, str]]) -> None:
        for message, reason in items:
            letter = dead_letter(f"processor:{stream}", message if message is not None else b"", reason)
            deadletter_topic.send_soon(key=letter.source.encode(), value=orjson.dumps(letter))
            metrics.DEADLETTERS.labels(stream).inc()

    async def publish(topic: topics.Topic, key: str, value: dict[str, Any], ts_recv: int) -> None:
        emit = now_ms()
        value["ts_emit"] = emit
        producer = app.producer._ensure_producer()  # type: ignore[attr-defined]
        await producer.send(topic.name, value=orjson.dumps(value), key=key.encode())
        metrics.UPDATES.labels(topic.name).inc()
        if ts_recv:
            metrics.EVENT_LAG.observe(max(0.0, (emit - ts_recv) / 1000))

    flush_lock = asyncio.Lock()

    async def flush() -> None:
        """Emit what is due. One flush at a time: two interleaved flushes could hand the engine a
        later close before an earlier one, which it would then drop as a redelivery."""
        async with flush_lock:
            await flush_due()

    async def flush_due() -> None:
        """Emit in slices of at most FLUSH_SLICE outputs, yielding to the loop between slices."""
        now = time.monotonic()
        closed: set[str] = set()
        while True:
            with metrics.handler_slice("flush"):
                stats = ctx.assets.due(now, FLUSH_SLICE)
                asset_alerts = [ctx.signals.on_asset(value) for _asset, value in stats]
            for (asset, value), alerted in zip(stats, asset_alerts, strict=True):
                await publish(topics.ASSET_STATS, asset, value, ctx.assets.ts_recv.get(asset, 0))
                await alerts(alerted)
            if len(stats) < FLUSH_SLICE:
                break
            await asyncio.sleep(0)
        for key, value in ctx.liquidations.due(now):
            await publish(topics.LIQUIDATION_TOTALS, key, value, ctx.liquidations.max_ts_recv)
            metrics.observe_liquidations(value)
            await alerts(ctx.signals.on_liquidation_totals(value, price_change(value["scope"])))
        if not ctx.history_ready.is_set():
            await save_signals(closed)
            return
        while True:
            with metrics.handler_slice("flush"):
                values = ctx.sectors.due_sectors(now, SECTOR_SLICE)
            for value in values:
                await publish(topics.SECTOR_CAPS, value["sector"], value, ctx.sectors.max_ts_recv)
                metrics.observe_sector(value)
                await alerts(ctx.signals.on_sector(value))
                if value["sector"] == "total":
                    await alerts(recheck_cascades())
            if len(values) < SECTOR_SLICE:
                break
            await asyncio.sleep(0)
        cap_series = set(ctx.universe.sectors())
        while True:
            with metrics.handler_slice("flush"):
                candles = ctx.sectors.due_candles(now, FLUSH_SLICE)
                outputs = [(candle, *ctx.signals.on_candle(dict(candle))) for candle in candles]
            for candle, indicators, raised in outputs:
                key = f"{candle['series']}:{candle['interval']}"
                await publish(topics.CANDLES, key, candle, ctx.sectors.max_ts_recv)
                await publish(topics.INDICATORS, key, indicators, ctx.sectors.max_ts_recv)
                metrics.observe_indicators(indicators, cap_series)
                await alerts(raised)
                if candle["closed"]:
                    closed.add(key)
            if len(candles) < FLUSH_SLICE:
                break
            await asyncio.sleep(0)
        await save_signals(closed)

    async def save_signals(closed: set[str]) -> None:
        """Write the engine state that changed to its changelog table: the series that closed (only
        the sector stage's worker closes candles) and the edge book, the latter only from the worker
        that owns the table (another worker's edge flags are not kept across its restart)."""
        name = signal_table.changelog_topic.get_topic_name()
        owner = any(tp.topic == name for tp in app.assignor.assigned_actives())
        changes: list[TableChange] = []
        for key, value in signal_state_changes(ctx.signals, closed, signal_written, book=owner):
            signal_written[key] = value
            changes.append((0, key, value))
        if changes:
            await signals_out.write_table(signal_table, changes)
            await signals_out.delivered()

    async def alerts(raised: list[dict[str, Any]]) -> None:
        for alert in raised:
            await publish(topics.ALERTS, alert["kind"], alert, 0)
            metrics.ALERTS.labels(alert["kind"]).inc()

    def recheck_cascades() -> list[Any]:
        """The market-wide liquidation scopes judged again against the total cap's new 24 h change:
        the liquidation stream can run ahead of the sector stage (a replay), so the move it was
        first judged against may be an earlier one. Edge flags keep an alert from repeating."""
        raised: list[Any] = []
        for _key, value in sorted(ctx.liquidations.emit.last_value.items()):
            if not str(value["scope"]).startswith("asset:"):
                raised += ctx.signals.on_liquidation_totals(dict(value), price_change(value["scope"]))
        return raised

    def price_change(scope: str) -> float | None:
        """The 24 h price move a liquidation scope is judged against (total cap for all/exchange)."""
        value = ctx.sectors.sectors.last_value.get("total")
        if scope.startswith("asset:"):
            value = ctx.assets.emit.last_value.get(scope[6:])
        return None if value is None else value.get("change_24h_pct")

    bars_out, liqs_out, totals_out, sectors_out = Sender(app), Sender(app), Sender(app), Sender(app)
    signals_out = Sender(app)
    metrics.init_series((t.name for t in DERIVED_TOPICS), alert_kinds(), LIQUIDATION_WINDOWS,
                        ctx.universe.sectors())

    def _assigned(_app: Any, *args: Any, **_: Any) -> None:
        metrics.partitions_assigned(args[0], minutes_topic.get_topic_name(), liqs_one.get_topic_name(),
                                    LIQUIDATION_WINDOWS, ctx.universe.sectors())

    def _revoked(_app: Any, *args: Any, **_: Any) -> None:
        metrics.partitions_revoked(args[0], minutes_topic.get_topic_name(), liqs_one.get_topic_name())

    # mode's generic signal signature defeats mypy
    app.on_partitions_assigned.connect(cast(Any, _assigned))
    app.on_partitions_revoked.connect(cast(Any, _revoked))

    async def reload(table: Any) -> None:
        """Complete what Faust recovered with the changelog read to its true end (see read_changelog)."""
        name = table.changelog_topic.get_topic_name()
        tps = sorted(tp for tp in app.assignor.assigned_actives() if tp.topic == name)
        data = await read_changelog(ctx.kafka, [TopicPartition(tp.topic, tp.partition) for tp in tps])
        missing = len(set(data) - set(table.data))
        table.data.update(data)
        log.info("%s: %d keys from %d changelog partitions (%d beyond Faust's recovery)",
                 name, len(data), len(tps), missing)

    @asset_table.on_recover
    async def _recover_assets() -> None:
        await reload(asset_table)
        ctx.assets.rebuild(table_items(asset_table))
        metrics.STATE_KEYS.labels("asset-buckets").set(len(asset_table.data))

    @liq_table.on_recover
    async def _recover_liquidations() -> None:
        await reload(liq_table)
        ctx.liquidations.rebuild(v for _, v in table_items(liq_table))
        metrics.STATE_KEYS.labels("liquidations").set(len(liq_table.data))

    def behind(events: list[Any]) -> set[int]:
        """Trade-bars partitions with records beyond this batch (their progress is not caught up)."""
        last: dict[Any, int] = {}
        for e in events:
            last[e.message.tp] = max(last.get(e.message.tp, -1), e.message.offset)
        out = set()
        for tp, offset in last.items():
            highwater = app.consumer.highwater(tp)
            if highwater is None or offset + 1 < highwater:
                out.add(tp.partition)
        return out

    @app.agent(bars_topic)
    async def trade_bars(stream: Any) -> None:
        async for events in stream.take_events(settings.processor_batch_size, settings.processor_batch_within):
            await ctx.reference_ready.wait()
            started = time.perf_counter()
            for i in range(0, len(events), BAR_SLICE):
                chunk = events[i:i + BAR_SLICE]
                with metrics.handler_slice("trade_bars"):
                    batch = ctx.assets.apply(((e.value, e.message.partition, e.message.key) for e in chunk),
                                             behind(chunk))
                await bars_out.write_table(asset_table, batch.table)
                if batch.records:    # one message per slice: the sector stage pays Faust's per-event cost once
                    await bars_out.send(minutes_topic.get_topic_name(), b"slice", pack_records(batch.records))
                send_deadletters("trade_bars", batch.deadletters)
                for outcome, n in batch.outcomes.items():
                    metrics.EVENTS.labels("trade_bars", outcome).inc(n)
                metrics.TRADES.inc(batch.trades)
                await asyncio.sleep(0)
            await flush()
            await bars_out.delivered()
            metrics.PROCESSING.labels("trade_bars").observe(time.perf_counter() - started)

    @app.agent(liqs_topic)
    async def liquidations(stream: Any) -> None:
        async for events in stream.take_events(1000, 0.02):
            await ctx.reference_ready.wait()
            bad = []
            for event in events:
                try:
                    liq = parse_liquidation(event.value, ctx.universe, ctx.assets.bounds)
                except InvalidEvent as exc:
                    bad.append((event.value, str(exc)))
                    continue
                await liqs_out.send(liqs_one.get_topic_name(), b"all", orjson.dumps(liq))
            send_deadletters("liquidations", bad)
            if bad:
                metrics.EVENTS.labels("liquidations", "deadletter").inc(len(bad))
            await liqs_out.delivered()

    @app.agent(liqs_one)
    async def liquidation_totals(stream: Any) -> None:
        async for events in stream.take_events(1000, 0.02):
            started = time.perf_counter()
            with metrics.handler_slice("liquidation_totals"):
                liqs = [Liquidation.from_dict(orjson.loads(e.value)) for e in events]
                changes, outcomes = ctx.liquidations.apply(liqs)
            await totals_out.write_table(liq_table, changes)
            for outcome, n in outcomes.items():
                metrics.EVENTS.labels("liquidations", outcome).inc(n)
            await flush()
            await totals_out.delivered()
            metrics.PROCESSING.labels("liquidations").observe(time.perf_counter() - started)

    @signal_table.on_recover
    async def _recover_signals() -> None:
        await reload(signal_table)
        loaded = load_signal_state(ctx.signals, table_items(signal_table))
        signal_written.update((k.decode(), v) for k, v in signal_table.data.items())
        log.info("signal engine: %d series states restored", loaded)

    @sector_table.on_recover
    async def _recover_sectors() -> None:
        await reload(sector_table)
        ctx.sectors.rebuild(table_items(sector_table))
        metrics.STATE_KEYS.labels("sector-buckets").set(len(sector_table.data))

    @app.agent(minutes_topic)
    async def sectors(stream: Any) -> None:
        # each message packs up to BAR_SLICE records: a batch of about processor_batch_size records
        packed_batch = max(1, settings.processor_batch_size // BAR_SLICE)
        async for events in stream.take_events(packed_batch, settings.processor_batch_within):
            await ctx.reference_ready.wait()
            await ctx.history_ready.wait()
            started = time.perf_counter()
            changes: list[TableChange] = []
            for chunk in slices_by_size([e.value for e in events], MINUTES_SLICE_BYTES):
                with metrics.handler_slice("asset_minutes"):
                    changes += ctx.sectors.apply(chunk)
                await asyncio.sleep(0)
            # the closes go out (and the engine state is stored) before the buckets that made them:
            # after a kill in between, the redelivered buckets close the same intervals again
            await flush()
            await sectors_out.write_table(sector_table, changes)
            await sectors_out.delivered()
            metrics.PROCESSING.labels("asset_minutes").observe(time.perf_counter() - started)

    flushing: set[asyncio.Task[None]] = set()

    @app.timer(0.1)
    async def _conflation_timer() -> None:
        """Start a flush in the background (a long catch-up flush must not make the timer overlap);
        none while one runs: it emits what is due."""
        if not flush_lock.locked() and not flushing:
            task = asyncio.ensure_future(flush())
            flushing.add(task)
            task.add_done_callback(_flushed)

    def _flushed(task: asyncio.Task[None]) -> None:
        flushing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("flush failed", exc_info=task.exception())

    @app.timer(5.0)
    async def _gauges() -> None:
        for name, table in (("asset-buckets", asset_table), ("liquidations", liq_table),
                            ("sector-buckets", sector_table), ("signals", signal_table)):
            metrics.STATE_KEYS.labels(name).set(len(table.data))
        metrics.observe_sector_hold(len(ctx.sectors.held), ctx.sectors.take_forced())
        consumer = app.consumer
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            position = getattr(consumer, "_committed_offset", {}).get(tp)  # no public position per tp
            if highwater is not None:
                metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, highwater - (position or 0)))

    @app.task
    async def _short_fetch_wait() -> None:
        await shorten_fetch_wait(app, settings.processor_fetch_max_wait_ms)

    @app.task
    async def _reference() -> None:
        await run_reference_reader(ctx)

    @app.task
    async def _history() -> None:
        await run_history_reader(ctx)

    ctx.send_deadletters = send_deadletters
