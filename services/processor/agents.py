"""Faust agents, tables and timers of the processor: the async shell around the pure topology.

What each batch changes and what each flush publishes where, in which order, is decided by
``topology.Topology`` (pure, unit-tested without Faust); this module only moves bytes: it reads the
topics, writes the tables, produces the records and outputs it is handed, yields to the event loop
between slices, and keeps the metrics. Streams (see docs/semantics.md and docs/architecture.md):
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
from collections import Counter
from collections.abc import Iterable
from typing import Any, cast

import faust
import orjson
from aiokafka import TopicPartition

from services.common import topics
from services.common.codec import dead_letter, kept, now_ms
from services.common.kafka import make_consumer
from services.common.settings import KafkaSettings
from services.processor import metrics
from services.processor.context import Context
from services.processor.packer import keep_packing, pack_topic
from services.processor.packing import PACK_RECORDS, PackError, unpack
from services.processor.reference_io import run_history_reader, run_reference_reader
from services.processor.stage_assets import TableChange
from services.processor.timeutil import LIQUIDATION_WINDOWS
from services.processor.topology import DERIVED_TOPICS, Output, Topology, slices_by_size

log = logging.getLogger("cryptopulse.processor")


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
        batches = Batches(self.app.producer._ensure_producer())  # type: ignore[attr-defined]
        for partition, key, value in changes:
            raw_key = key.encode()
            if value is None:
                data.pop(raw_key, None)
            else:
                data[raw_key] = kept(value)
            await batches.add(name, partition, raw_key, value)
        self.futures += await batches.send()

    async def delivered(self) -> None:
        futures, self.futures = self.futures, []
        if futures:
            await asyncio.gather(*futures)


class Partitions:
    """The partition ``send`` would choose for a keyed record, remembered per (topic, key).

    aiokafka's default partitioner hashes the key with a pure-Python murmur2 (5 % of the
    processor's CPU in a replay); the output keys repeat (assets, sectors, series). An entry is
    valid while its topic keeps the partition count it was computed with; at most ``limit`` are
    kept (then the memory starts afresh)."""

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self.known: dict[tuple[str, bytes], tuple[int, int]] = {}   # -> (partition count, partition)

    def of(self, producer: Any, topic: str, key: bytes, value: bytes) -> int | None:
        """None while the topic's metadata is not known yet: the caller then uses ``send``, which
        waits for it."""
        available = producer.client.cluster.partitions_for_topic(topic)
        if not available:
            return None
        held = self.known.get((topic, key))
        if held is not None and held[0] == len(available):
            return held[1]
        partition = int(producer._partition(topic, None, None, None, key, value))
        if len(self.known) >= self.limit:
            self.known.clear()
        self.known[(topic, key)] = (len(available), partition)
        return partition


class Batches:
    """Records gathered per (topic, partition) into aiokafka record batches, sent with
    ``send_batch``: about a third of the client CPU of ``send`` per record (``bench.kafka_floor``).
    The records of one partition keep their order."""

    def __init__(self, producer: Any, partitions: Partitions | None = None) -> None:
        self.producer = producer
        self.partitions = Partitions() if partitions is None else partitions
        self.open: dict[tuple[str, int], Any] = {}
        self.futures: list[asyncio.Future[Any]] = []

    def partition(self, topic: str, key: bytes, value: bytes) -> int | None:
        """The partition ``send`` would choose for a keyed record (see :class:`Partitions`)."""
        return self.partitions.of(self.producer, topic, key, value)

    async def add(self, topic: str, partition: int, key: bytes, value: bytes | None) -> None:
        batch = self.open.get((topic, partition))
        if batch is not None and batch.append(key=key, value=value, timestamp=None) is not None:
            return
        if batch is not None:      # full: it goes, the next one starts with this record
            self.futures.append(await self.producer.send_batch(batch, topic, partition=partition))
        batch = self.open[(topic, partition)] = self.producer.create_batch()
        batch.append(key=key, value=value, timestamp=None)

    async def send(self) -> list[asyncio.Future[Any]]:
        """Send every open batch; returns the delivery futures of all batches sent since the last call."""
        for (topic, partition), batch in self.open.items():
            self.futures.append(await self.producer.send_batch(batch, topic, partition=partition))
        self.open = {}
        futures, self.futures = self.futures, []
        return futures


RELOAD_TIMEOUT_S = 120.0
BAR_SLICE = 250        # input records applied between two yields to the event loop (~10-25 ms here)
MINUTES_SLICE_BYTES = 64 * 1024   # minute records (packed ~250 per message) applied between two yields


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



def observe(out: Output, cap_series: set[str]) -> None:
    """The market gauges and alert counts of one published output."""
    if out.topic is topics.LIQUIDATION_TOTALS:
        metrics.observe_liquidations(out.value)
    elif out.topic is topics.SECTOR_CAPS:
        metrics.observe_sector(out.value)
    elif out.topic is topics.INDICATORS:
        metrics.observe_indicators(out.value, cap_series)
    elif out.topic is topics.ALERTS:
        metrics.ALERTS.labels(out.key).inc()


def attach(app: faust.App, ctx: Context) -> Topology:
    """Declare the processor's topics, tables, agents and timers on ``app``; returns the topology
    they call."""
    settings = ctx.settings
    topology = Topology(ctx, span=metrics.handler_slice)
    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    packs = pack_topic(topology.packs_topic)
    packs_topic = app.topic(packs.name, partitions=packs.partitions, internal=True,
                            retention=packs.retention_ms / 1000, **raw)
    liqs_topic = app.topic(topics.LIQUIDATIONS.name, **raw)
    minutes_topic = app.topic(topology.minutes_topic, partitions=1, internal=True, **raw)
    liqs_one = app.topic(topology.liquidations_topic, partitions=1, internal=True, **raw)
    deadletter_topic = app.topic(topics.DEADLETTER.name, **raw)

    as_bytes: dict[str, Any] = {"key_type": bytes, "value_type": bytes}
    asset_table = app.Table("asset-buckets", partitions=topics.TRADE_BARS.partitions, **as_bytes)
    liq_table = app.Table("liquidations", partitions=1, **as_bytes)
    sector_table = app.Table("sector-buckets", partitions=1, **as_bytes)
    # one partition, so Faust's assignor puts it with the single-partition stages that feed the engine
    signal_table = app.Table("signals", partitions=1, **as_bytes)

    def send_deadletters(stream: str, items: Iterable[tuple[bytes | None, str]]) -> None:
        for message, reason in items:
            letter = dead_letter(f"processor:{stream}", message if message is not None else b"", reason)
            deadletter_topic.send_soon(key=letter.source.encode(), value=orjson.dumps(letter))
            metrics.DEADLETTERS.labels(stream).inc()

    output_partitions = Partitions()

    async def publish(outputs: Iterable[Output], cap_series: set[str]) -> None:
        emit = now_ms()
        producer = app.producer._ensure_producer()  # type: ignore[attr-defined]
        batches = Batches(producer, output_partitions)
        counts: Counter[str] = Counter()
        for out in outputs:
            # a copy: the emitter keeps out.value as the last value sent, to skip an unchanged next one
            value = orjson.dumps({**out.value, "ts_emit": emit})
            key = out.key.encode()
            partition = batches.partition(out.topic.name, key, value)
            if partition is None:
                await producer.send(out.topic.name, value=value, key=key)
            else:
                await batches.add(out.topic.name, partition, key, value)
            counts[out.topic.name] += 1
            if out.ts_recv:
                metrics.EVENT_LAG.observe(max(0.0, (emit - out.ts_recv) / 1000))
            observe(out, cap_series)
        await batches.send()
        for topic, count in counts.items():
            metrics.UPDATES.labels(topic).inc(count)

    flush_lock = asyncio.Lock()

    async def flush() -> None:
        """Emit what is due, slice by slice, yielding to the loop where a slice says so. One flush at
        a time: two interleaved flushes could hand the engine a later close before an earlier one,
        which it would then drop as a redelivery."""
        async with flush_lock:
            run = topology.flush(time.monotonic())
            cap_series = set(ctx.universe.sectors())
            for part in run:
                await publish(part.outputs, cap_series)
                send_deadletters("asset_minutes", part.deadletters)   # candles come from that stream
                if part.pause:
                    await asyncio.sleep(0)
            await save_signals(run.closed)

    async def save_signals(closed: set[str]) -> None:
        """Write the engine state that changed to its changelog table: the series that closed (only
        the sector stage's worker closes candles) and the edge book, the latter only from the worker
        that owns the table (another worker's edge flags are not kept across its restart)."""
        name = signal_table.changelog_topic.get_topic_name()
        owner = any(tp.topic == name for tp in app.assignor.assigned_actives())
        changes = topology.signal_changes(closed, book=owner)
        if changes:
            await signals_out.write_table(signal_table, changes)
            await signals_out.delivered()

    async def produce(sender: Sender, records: Iterable[tuple[str, bytes, bytes]]) -> None:
        for topic, key, value in records:
            await sender.send(topic, key, value)

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
        topology.restore_assets(table_items(asset_table))
        metrics.STATE_KEYS.labels("asset-buckets").set(len(asset_table.data))

    @liq_table.on_recover
    async def _recover_liquidations() -> None:
        await reload(liq_table)
        topology.restore_liquidations(v for _, v in table_items(liq_table))
        metrics.STATE_KEYS.labels("liquidations").set(len(liq_table.data))

    async def apply_pack(event: Any) -> None:
        """The bars of one pack, slice by slice; a slice is "behind" (not read to the end of its
        partition) unless it ends the last pack the packer made when it had read all of trade-bars."""
        partition = event.message.partition
        try:
            records, caught_up = unpack(event.value)
        except PackError as exc:
            send_deadletters("trade_bars", [(event.value, f"malformed trade-bars pack: {exc}")])
            metrics.EVENTS.labels("trade_bars", "deadletter").inc()
            return
        highwater = app.consumer.highwater(event.message.tp)
        pack_done = caught_up and highwater is not None and event.message.offset + 1 >= highwater
        for i in range(0, len(records), BAR_SLICE):
            chunk = records[i:i + BAR_SLICE]
            behind = () if pack_done and i + BAR_SLICE >= len(records) else (partition,)
            with metrics.handler_slice("trade_bars"):
                batch = topology.bars(((value, partition, key) for key, value in chunk), behind)
            await bars_out.write_table(asset_table, batch.table)
            # one message of minute records per slice: the sector stage pays Faust's per-event cost once
            await produce(bars_out, batch.records)
            send_deadletters("trade_bars", batch.deadletters)
            for outcome, n in batch.outcomes.items():
                metrics.EVENTS.labels("trade_bars", outcome).inc(n)
            metrics.TRADES.inc(batch.trades)
            await asyncio.sleep(0)

    @app.agent(packs_topic)
    async def trade_bars(stream: Any) -> None:
        # each message packs up to PACK_RECORDS bars: a batch of about processor_batch_size bars
        packs_per_batch = max(1, settings.processor_batch_size // PACK_RECORDS)
        async for events in stream.take_events(packs_per_batch, settings.processor_batch_within):
            await ctx.reference_ready.wait()
            started = time.perf_counter()
            for event in events:
                await apply_pack(event)
            await flush()
            await bars_out.delivered()
            metrics.PROCESSING.labels("trade_bars").observe(time.perf_counter() - started)

    @app.agent(liqs_topic)
    async def liquidations(stream: Any) -> None:
        async for events in stream.take_events(1000, 0.02):
            await ctx.reference_ready.wait()
            batch = topology.check_liquidations(e.value for e in events)
            await produce(liqs_out, batch.records)
            send_deadletters("liquidations", batch.deadletters)
            for outcome, n in batch.outcomes.items():
                metrics.EVENTS.labels("liquidations", outcome).inc(n)
            await liqs_out.delivered()

    @app.agent(liqs_one)
    async def liquidation_totals(stream: Any) -> None:
        async for events in stream.take_events(1000, 0.02):
            started = time.perf_counter()
            with metrics.handler_slice("liquidation_totals"):
                batch = topology.liquidation_totals(e.value for e in events)
            await totals_out.write_table(liq_table, batch.table)
            for outcome, n in batch.outcomes.items():
                metrics.EVENTS.labels("liquidations", outcome).inc(n)
            await flush()
            await totals_out.delivered()
            metrics.PROCESSING.labels("liquidations").observe(time.perf_counter() - started)

    @signal_table.on_recover
    async def _recover_signals() -> None:
        await reload(signal_table)
        loaded = topology.restore_signals(table_items(signal_table))
        log.info("signal engine: %d series states restored", loaded)

    @sector_table.on_recover
    async def _recover_sectors() -> None:
        await reload(sector_table)
        topology.restore_sectors(table_items(sector_table))
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
                    changes += topology.minutes(chunk)
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
    async def _packer() -> None:
        await keep_packing(ctx, packs)

    @app.task
    async def _reference() -> None:
        await run_reference_reader(ctx)

    @app.task
    async def _history() -> None:
        await run_history_reader(ctx)

    ctx.send_deadletters = send_deadletters
    return topology
