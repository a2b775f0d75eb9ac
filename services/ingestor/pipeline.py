"""The pure part of ingestion: raw frame -> adapter -> dedupe -> gaps -> micro-bars -> records.

:meth:`Pipeline.process` turns one :class:`RawFrame` into Kafka records ``(topic, key, value)``
and classifies the frame as ``ok`` (events), ``ignored`` (acks, pongs, control frames) or
``deadletter`` (a dead-letter record with the raw frame and the reason). It never raises on
input. No I/O happens here and no clock is read: what happened (counts per venue, event lags,
dead-letter reasons, gaps, adapter errors) accumulates in a :class:`Tally` that the async shell
takes (:meth:`Pipeline.take_tally`) to update the metrics and the log.
"""

from __future__ import annotations

import math
import traceback
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from services.common import topics
from services.common.codec import dead_letter, kept
from services.common.events import Liquidation, Trade, TradeBar
from services.common.frames import RawFrame
from services.ingestor.bars import BarBuilder
from services.ingestor.dedupe import Deduper
from services.ingestor.gaps import GapDetector, TradeGap
from services.ingestor.venues.base import ADAPTER_ERROR, BAD_VALUE, OVERSIZED, FrameError, RowError, Venue

Record = tuple[str, bytes, bytes]   # topic name, key, value

OK, IGNORED, DEADLETTER = "ok", "ignored", "deadletter"
MAX_LAGS = 65_536   # lag samples kept per venue until the shell takes the tally (bounded if it never does)
UNKNOWN_VENUE = "unknown"

_TRADES, _LIQS, _BARS = topics.TRADES.name, topics.LIQUIDATIONS.name, topics.TRADE_BARS.name
_GAPS, _DL = topics.TRADE_GAPS.name, topics.DEADLETTER.name


def encode(value: Any) -> bytes:
    """A record's bytes at their exact size (see :func:`codec.kept`): every record buffered for
    Kafka would otherwise cost orjson's whole serialization buffer."""
    return kept(orjson.dumps(value))


def _usable(event: Trade | Liquidation) -> bool:
    """Guards against adapter arithmetic overflowing/underflowing (e.g. price 1e300 x size 1e300)."""
    return 0.0 < event.price < math.inf and 0.0 < event.size < math.inf and 0.0 < event.notional_usd < math.inf


def _with_raw(event: Trade | Liquidation, raw: str) -> dict[str, Any]:
    value: dict[str, Any] = {name: getattr(event, name) for name in event.__slots__}  # type: ignore[attr-defined]
    value["raw"] = raw
    return value


class VenueTally:
    """What happened on one venue since the tally was last taken (plain counts)."""

    __slots__ = ("frames", "trades", "liquidations", "duplicates", "gaps", "missing", "lags", "first_gap")

    def __init__(self) -> None:
        self.frames = {OK: 0, IGNORED: 0, DEADLETTER: 0}
        self.trades = self.liquidations = self.duplicates = self.gaps = self.missing = 0
        self.lags: list[float] = []            # ts_recv - ts of each event, seconds
        self.first_gap: TradeGap | None = None

    def lag(self, seconds: float) -> None:
        if len(self.lags) < MAX_LAGS:
            self.lags.append(seconds)


@dataclass
class Tally:
    """Everything the metrics and the log need to know, since the shell last took it."""

    venues: dict[str, VenueTally] = field(default_factory=dict)
    deadletters: Counter[tuple[str, str]] = field(default_factory=Counter)   # (source, reason class)
    adapter_errors: dict[str, tuple[int, str]] = field(default_factory=dict)  # venue: (count, first traceback)
    events: int = 0

    def venue(self, venue: str) -> VenueTally:
        found = self.venues.get(venue)
        if found is None:
            found = self.venues[venue] = VenueTally()
        return found


class Pipeline:
    def __init__(self, venues: Mapping[str, Venue], *, max_frame_bytes: int = 262_144,
                 keep_raw: bool = False, dedupe: Deduper | None = None, bar_interval_ms: int = 250) -> None:
        self.venues = dict(venues)
        self.max_frame_bytes = max_frame_bytes
        self.keep_raw = keep_raw
        self.dedupe = dedupe if dedupe is not None else Deduper()   # not `or`: an empty Deduper is falsy
        self.gaps = GapDetector()
        self.bars = BarBuilder(bar_interval_ms)
        self.stats: Counter[str] = Counter()
        self.tally = Tally()
        self.clock_ms = 0   # receipt clock: the latest ts_recv seen

    def take_tally(self) -> Tally:
        """What happened since the last call (the shell turns it into metrics and log lines)."""
        taken, self.tally = self.tally, Tally()
        return taken

    def dead_letter(self, source: str, raw: str, reason_class: str, message: str, ts_recv: int) -> Record:
        self.tally.deadletters[(source, reason_class)] += 1
        letter = dead_letter(source, raw, f"{reason_class}: {message}", ts_recv)
        return (_DL, source.encode(), encode(letter))

    def process(self, raw: RawFrame) -> list[Record]:
        """Records for one frame (dead letter included); counts the frame's outcome."""
        ts_recv = raw.ts_recv
        if ts_recv > self.clock_ms:
            self.clock_ms = ts_recv
        venue = self.venues.get(raw.venue)
        source = raw.venue if venue is not None else UNKNOWN_VENUE
        m = self.tally.venue(source)
        frame = raw.frame
        try:
            if venue is None:
                raise FrameError(ADAPTER_ERROR, f"no adapter for venue {raw.venue[:40]!r}")
            if len(frame) > self.max_frame_bytes and len(frame.encode()) > self.max_frame_bytes:
                raise FrameError(OVERSIZED, f"frame of {len(frame.encode())} bytes > {self.max_frame_bytes}")
            parsed = venue.parse_frame(frame, ts_recv)
            events, rejected, spans = parsed.events, parsed.rejected, parsed.spans
            for event in events:
                if not _usable(event):
                    raise FrameError(BAD_VALUE, "price, size or notional out of range")
        except FrameError as exc:
            return self._reject(m, source, frame, exc.reason_class, str(exc), ts_recv)
        except Exception as exc:  # an adapter bug must not stop ingestion: dead-letter the frame
            count, trace = self.tally.adapter_errors.get(source, (0, ""))
            self.tally.adapter_errors[source] = (count + 1, trace or traceback.format_exc())
            return self._reject(m, source, frame, ADAPTER_ERROR, f"{type(exc).__name__}: {exc}", ts_recv)
        if not events:
            if rejected:     # nothing usable: the frame as received, with its first bad row's reason
                first, more = rejected[0], len(rejected) - 1
                message = f"row {first.index}: {first.message}" + (f" (and {more} more bad rows)" if more else "")
                return self._reject(m, source, frame, first.reason_class, message, ts_recv)
            m.frames[IGNORED] += 1
            self.stats[IGNORED] += 1
            return []
        m.frames[OK] += 1
        self.stats[OK] += 1
        records = self._records(m, events, venue.sequential_trade_ids, frame, spans)  # type: ignore[union-attr]
        if rejected:
            records += [self._row_letter(source, row, ts_recv) for row in rejected]
        return records

    def _row_letter(self, source: str, row: RowError, ts_recv: int) -> Record:
        """A bad row of a frame whose other rows are published: dead-lettered alone, as a one-row
        frame of the venue's format."""
        self.stats["bad_rows"] += 1
        return self.dead_letter(source, row.raw, row.reason_class, f"row {row.index}: {row.message}", ts_recv)

    def _reject(self, m: VenueTally, source: str, frame: str, reason_class: str, message: str,
                ts_recv: int) -> list[Record]:
        m.frames[DEADLETTER] += 1
        self.stats[DEADLETTER] += 1
        return [self.dead_letter(source, frame, reason_class, message, ts_recv)]

    def _records(self, m: VenueTally, events: list[Trade | Liquidation], sequential: bool,
                 frame: str, spans: dict[int, int]) -> list[Record]:
        out: list[Record] = []
        dedupe = self.dedupe.is_duplicate
        for index, event in enumerate(events):
            if isinstance(event, Trade):
                if dedupe((event.exchange, event.instrument, event.trade_id), event.ts_recv):
                    m.duplicates += 1
                    self.stats["duplicates"] += 1
                    continue
                m.trades += 1
                self.stats["trades"] += 1
                if sequential:
                    gap = self.gaps.observe(event, spans.get(index, 1) if spans else 1)
                    if gap is not None:
                        out.append(self._gap(m, gap))
                bar = self.bars.add(event)
                if bar is not None:
                    out.append(self.bar_record(bar))
                value = encode(_with_raw(event, frame) if self.keep_raw else event)
                out.append((_TRADES, event.instrument.encode(), value))
            else:
                if dedupe((event.exchange, event.id), event.ts_recv):
                    m.duplicates += 1
                    self.stats["duplicates"] += 1
                    continue
                m.liquidations += 1
                self.stats["liquidations"] += 1
                value = encode(_with_raw(event, frame) if self.keep_raw else event)
                out.append((_LIQS, event.instrument.encode(), value))
            m.lag(max(0, event.ts_recv - event.ts) / 1000.0)
        self.tally.events += len(events)
        return out

    def _gap(self, m: VenueTally, gap: TradeGap) -> Record:
        m.gaps += 1
        m.missing += gap.missing
        if m.first_gap is None:
            m.first_gap = gap
        self.stats["gaps"] += 1
        return (_GAPS, f"{gap.exchange}:{gap.instrument}".encode(), encode(gap))

    def bar_record(self, bar: TradeBar) -> Record:
        self.stats["bars"] += 1
        return (_BARS, bar.base.encode(), encode(bar))

    def due_bars(self, now_ms: int | None = None) -> list[Record]:
        """Records of the bars whose interval has elapsed at ``now_ms`` (default: the receipt clock)."""
        return [self.bar_record(bar) for bar in self.bars.due(self.clock_ms if now_ms is None else now_ms)]

    def close(self) -> list[Record]:
        """Records of every open bar (end of input or shutdown)."""
        return [self.bar_record(bar) for bar in self.bars.close_all()]
