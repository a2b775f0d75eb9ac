"""The processor's topology (pure: no Faust, no Kafka client): what each input batch changes and
what each flush publishes where, in which order.

``agents.py`` is the Faust shell around it: it owns the topics, tables and producer, calls these
methods from its agents and timers, writes the table changes, produces the records and outputs in
the order given, and yields to the event loop after every slice that says ``pause``.

A flush (one at a time: the shell holds a lock) emits, in this order:

1. ``asset-stats`` of the due assets, each followed by its alerts (slices of ``flush_slice`` assets);
2. ``liquidation-totals``, each followed by its cascade alerts, judged against the scope's 24 h
   price move (:meth:`Topology.price_change`);
3. once the candle history is read (``ctx.history_ready``): ``sector-caps``, each followed by its
   alerts and, after ``total``, the market-wide cascades judged again against the total cap's new
   24 h change (:meth:`Topology.recheck_cascades`; slices of ``sector_slice`` sectors);
4. ``candles`` and their ``indicators`` (the closed candles first, in order), each pair followed by
   its alerts (slices of ``flush_slice`` candles). A candle whose indicators cannot be computed is
   published alone and handed back as a dead letter (:attr:`Slice.deadletters`).

The series whose candles closed in a flush (:attr:`Flush.closed`) are then stored with the edge
book (:meth:`Topology.signal_changes`), so a restarted worker's engine continues from them.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Container, Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from services.common import topics
from services.common.events import InvalidEvent, Liquidation
from services.processor.context import Context, internal_topic_name
from services.processor.signals import SignalEngine
from services.processor.stage_assets import TableChange, pack_records
from services.processor.validate import parse_liquidation

log = logging.getLogger("cryptopulse.processor")

FLUSH_SLICE = 200      # assets or candles of a flush computed between two yields to the event loop
SECTOR_SLICE = 8       # sector values (each sums every member) computed between two yields
DERIVED_TOPICS = (topics.ASSET_STATS, topics.SECTOR_CAPS, topics.LIQUIDATION_TOTALS, topics.CANDLES,
                  topics.INDICATORS, topics.ALERTS)
BOOK_KEY = "__book__"  # the signal table's key of the engine's edge book

Record = tuple[str, bytes, bytes]                    # (internal topic, key, value) to produce
DeadLetter = tuple[bytes | None, str]                # (raw input, reason)
Span = Callable[[str], AbstractContextManager[object]]


def no_span(_handler: str) -> AbstractContextManager[object]:
    return nullcontext()


class Output(NamedTuple):
    """One value to publish: ``key`` on ``topic``; ``ts_recv`` the receive time of the newest input
    behind it (0 for none: no event lag is observed). A named tuple: a replay makes one per candle,
    indicator and stat, and a frozen dataclass costs four times as much to create."""

    topic: topics.Topic
    key: str
    value: dict[str, Any]
    ts_recv: int


@dataclass(frozen=True)
class Slice:
    """Outputs computed without yielding; ``pause``: yield to the event loop before the next slice
    (the part it belongs to has more to emit); ``deadletters``: candles whose indicators could not
    be computed (the candle itself is published)."""

    outputs: list[Output]
    pause: bool
    deadletters: list[DeadLetter] = field(default_factory=list)


@dataclass
class Batch:
    """What one input batch changes: table changes (partition, key, value or None to delete),
    records for an internal topic, dead letters, outcome counts and the trades applied."""

    table: list[TableChange] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    deadletters: list[DeadLetter] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    trades: int = 0


class Flush:
    """One flush: iterate for its slices (computed as they are asked for); ``closed`` holds the
    ``series:interval`` keys whose candles closed in it."""

    def __init__(self, topology: Topology, now: float) -> None:
        self.closed: set[str] = set()
        self._slices = topology._slices(now, self.closed)

    def __iter__(self) -> Iterator[Slice]:
        return self._slices


def alerts_of(raised: Iterable[dict[str, Any]]) -> list[Output]:
    """Alerts go to ``alerts`` keyed by their kind."""
    return [Output(topics.ALERTS, alert["kind"], alert, 0) for alert in raised]


def slices_by_size(values: list[bytes], budget: int) -> Iterator[list[bytes]]:
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


class Topology:
    """Routes one worker's inputs through its stages (``ctx``) and their outputs to topics.

    ``span(handler)`` wraps each piece of flush work done without yielding (the shell times it);
    ``flush_slice``/``sector_slice`` bound that work.
    """

    def __init__(self, ctx: Context, span: Span = no_span, flush_slice: int = FLUSH_SLICE,
                 sector_slice: int = SECTOR_SLICE) -> None:
        self.ctx = ctx
        self.span = span
        self.flush_slice = flush_slice
        self.sector_slice = sector_slice
        self.minutes_topic = internal_topic_name(ctx.settings, "asset-minutes")
        self.packs_topic = internal_topic_name(ctx.settings, "trade-bar-packs")
        self.liquidations_topic = internal_topic_name(ctx.settings, "liquidations")
        self.signals_written: dict[str, bytes] = {}   # the signal table's content as this worker wrote it

    # -- inputs ---------------------------------------------------------------------------

    def bars(self, messages: Iterable[tuple[bytes | None, int, bytes | None]], behind: Container[int] = ()) -> Batch:
        """Trade bars (value, partition, key) -> asset-bucket changes and one packed message of
        minute records for the sector stage; ``behind``: partitions not read to their end."""
        applied = self.ctx.assets.apply(messages, behind)
        records = [(self.minutes_topic, b"slice", pack_records(applied.records))] if applied.records else []
        return Batch(applied.table, records, applied.deadletters, applied.outcomes, applied.trades)

    def check_liquidations(self, values: Iterable[bytes | None]) -> Batch:
        """Raw liquidations -> the valid ones, for the single-partition totals topic; the rest dead letters."""
        out = Batch()
        for value in values:
            try:
                liq = parse_liquidation(value, self.ctx.universe, self.ctx.assets.bounds)
            except InvalidEvent as exc:
                out.deadletters.append((value, str(exc)))
                continue
            out.records.append((self.liquidations_topic, b"all", orjson.dumps(liq)))
        if out.deadletters:
            out.outcomes["deadletter"] = len(out.deadletters)
        return out

    def liquidation_totals(self, values: Iterable[bytes]) -> Batch:
        """Checked liquidations (from :meth:`check_liquidations`) -> liquidation-table changes."""
        changes, outcomes = self.ctx.liquidations.apply(Liquidation.from_dict(orjson.loads(v)) for v in values)
        return Batch(changes, outcomes=Counter(outcomes))

    def minutes(self, messages: Iterable[bytes]) -> list[TableChange]:
        """Packed minute and progress records -> sector-bucket changes."""
        return self.ctx.sectors.apply(messages)

    # -- recovery -------------------------------------------------------------------------

    def restore_assets(self, items: Iterable[tuple[str, bytes]]) -> None:
        self.ctx.assets.rebuild(items)

    def restore_liquidations(self, values: Iterable[bytes]) -> None:
        self.ctx.liquidations.rebuild(values)

    def restore_sectors(self, items: Iterable[tuple[str, bytes]]) -> None:
        self.ctx.sectors.rebuild(items)

    def restore_signals(self, items: Iterable[tuple[str, bytes]]) -> int:
        """Load the signal table into the engine; returns how many series states were loaded."""
        items = list(items)
        loaded = load_signal_state(self.ctx.signals, items)
        self.signals_written.update(items)
        return loaded

    def signal_changes(self, closed: Iterable[str], book: bool) -> list[TableChange]:
        """Signal-table changes after a flush: the series in ``closed`` and, when ``book`` (this worker
        owns the table), the edge book if it changed; recorded as written."""
        changes: list[TableChange] = []
        for key, value in signal_state_changes(self.ctx.signals, closed, self.signals_written, book):
            self.signals_written[key] = value
            changes.append((0, key, value))
        return changes

    # -- outputs --------------------------------------------------------------------------

    def flush(self, now: float) -> Flush:
        """What is due at monotonic time ``now``, as slices (see the module's docstring)."""
        return Flush(self, now)

    def price_change(self, scope: str) -> float | None:
        """The 24 h price move a liquidation scope is judged against (total cap for all/exchange)."""
        value = self.ctx.sectors.sectors.last_value.get("total")
        if scope.startswith("asset:"):
            value = self.ctx.assets.emit.last_value.get(scope[6:])
        return None if value is None else value.get("change_24h_pct")

    def recheck_cascades(self) -> list[dict[str, Any]]:
        """The market-wide liquidation scopes judged again against the total cap's new 24 h change:
        the liquidation stream can run ahead of the sector stage (a replay), so the move it was
        first judged against may be an earlier one. Edge flags keep an alert from repeating."""
        raised: list[dict[str, Any]] = []
        for _key, value in sorted(self.ctx.liquidations.emit.last_value.items()):
            if not str(value["scope"]).startswith("asset:"):
                raised += self.ctx.signals.on_liquidation_totals(dict(value), self.price_change(value["scope"]))
        return raised

    def _slices(self, now: float, closed: set[str]) -> Iterator[Slice]:
        ctx = self.ctx
        while True:
            with self.span("flush"):
                stats = ctx.assets.due(now, self.flush_slice)
                outputs = []
                for asset, value in stats:
                    outputs.append(Output(topics.ASSET_STATS, asset, value, ctx.assets.ts_recv.get(asset, 0)))
                    outputs += alerts_of(ctx.signals.on_asset(value))
            more = len(stats) >= self.flush_slice
            yield Slice(outputs, pause=more)
            if not more:
                break
        outputs = []
        for key, value in ctx.liquidations.due(now):
            outputs.append(Output(topics.LIQUIDATION_TOTALS, key, value, ctx.liquidations.max_ts_recv))
            outputs += alerts_of(ctx.signals.on_liquidation_totals(value, self.price_change(value["scope"])))
        yield Slice(outputs, pause=False)
        if not ctx.history_ready.is_set():
            return
        while True:
            with self.span("flush"):
                values = ctx.sectors.due_sectors(now, self.sector_slice)
            outputs = []
            for value in values:
                outputs.append(Output(topics.SECTOR_CAPS, value["sector"], value, ctx.sectors.max_ts_recv))
                outputs += alerts_of(ctx.signals.on_sector(value))
                if value["sector"] == "total":
                    outputs += alerts_of(self.recheck_cascades())
            more = len(values) >= self.sector_slice
            yield Slice(outputs, pause=more)
            if not more:
                break
        while True:
            with self.span("flush"):
                candles = ctx.sectors.due_candles(now, self.flush_slice)
                outputs = []
                failed: list[DeadLetter] = []
                for candle in candles:
                    key = f"{candle['series']}:{candle['interval']}"
                    outputs.append(Output(topics.CANDLES, key, candle, ctx.sectors.max_ts_recv))
                    try:
                        indicators, raised = ctx.signals.on_candle(dict(candle))
                    except (ValueError, ArithmeticError) as exc:   # one series must not stop the flush
                        log.error("indicators of %s not computed: %r", key, exc)
                        failed.append((orjson.dumps(candle), f"indicators of {key} not computed: {exc!r}"))
                        continue
                    outputs.append(Output(topics.INDICATORS, key, indicators, ctx.sectors.max_ts_recv))
                    outputs += alerts_of(raised)
                    if candle["closed"]:
                        closed.add(key)
            more = len(candles) >= self.flush_slice
            yield Slice(outputs, pause=more, deadletters=failed)
            if not more:
                break
