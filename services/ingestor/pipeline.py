"""The pure part of ingestion: raw frame -> adapter -> dedupe -> gaps -> micro-bars -> records.

:meth:`Pipeline.process` turns one :class:`RawFrame` into Kafka records ``(topic, key, value)``
and classifies the frame as ``ok`` (events), ``ignored`` (acks, pongs, control frames) or
``deadletter`` (a dead-letter record with the raw frame and the reason). It never raises on
input. No I/O happens here; the async shells (sources, producer) are around it.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

import orjson

from services.common import topics
from services.common.codec import dead_letter
from services.common.events import Liquidation, Trade, TradeBar
from services.common.frames import RawFrame
from services.ingestor import metrics
from services.ingestor.bars import BarBuilder
from services.ingestor.dedupe import Deduper
from services.ingestor.gaps import GapDetector, TradeGap
from services.ingestor.venues.base import ADAPTER_ERROR, BAD_VALUE, OVERSIZED, FrameError, RowError, Venue

log = logging.getLogger("cryptopulse.ingestor.pipeline")

Record = tuple[str, bytes, bytes]   # topic name, key, value

OK, IGNORED, DEADLETTER = "ok", "ignored", "deadletter"
GAP_LOG_INTERVAL = 10.0
UNKNOWN_VENUE = "unknown"

_TRADES, _LIQS, _BARS = topics.TRADES.name, topics.LIQUIDATIONS.name, topics.TRADE_BARS.name
_GAPS, _DL = topics.TRADE_GAPS.name, topics.DEADLETTER.name


def encode(value: Any) -> bytes:
    """orjson bytes copied to their exact size: ``orjson.dumps`` returns an object that keeps a
    ~4 KiB allocation, which would make every record buffered for Kafka cost 4 KiB of memory."""
    return bytes(memoryview(orjson.dumps(value)))


def _usable(event: Trade | Liquidation) -> bool:
    """Guards against adapter arithmetic overflowing/underflowing (e.g. price 1e300 x size 1e300)."""
    return 0.0 < event.price < math.inf and 0.0 < event.size < math.inf and 0.0 < event.notional_usd < math.inf


def _with_raw(event: Trade | Liquidation, raw: str) -> dict[str, Any]:
    value: dict[str, Any] = {name: getattr(event, name) for name in event.__slots__}  # type: ignore[attr-defined]
    value["raw"] = raw
    return value


class _VenueMetrics:
    """Pre-bound metric children of one venue (``.labels()`` is too slow per frame)."""

    def __init__(self, venue: str) -> None:
        self.frames = {o: metrics.FRAMES.labels(venue, o) for o in (OK, IGNORED, DEADLETTER)}
        self.trades = metrics.EVENTS.labels(venue, "trade")
        self.liquidations = metrics.EVENTS.labels(venue, "liquidation")
        self.duplicates = metrics.DUPLICATES.labels(venue)
        self.gaps = metrics.TRADE_GAPS.labels(venue)
        self.missing = metrics.MISSING_TRADES.labels(venue)
        self.lag = metrics.EVENT_LAG.labels(venue)
        self.last_event = metrics.LAST_EVENT.labels(venue)
        self.venue = venue


class Pipeline:
    def __init__(self, venues: Mapping[str, Venue], *, max_frame_bytes: int = 262_144,
                 keep_raw: bool = False, dedupe: Deduper | None = None, bar_interval_ms: int = 250) -> None:
        self.venues = dict(venues)
        self.max_frame_bytes = max_frame_bytes
        self.keep_raw = keep_raw
        self.dedupe = dedupe or Deduper()
        self.gaps = GapDetector()
        self.bars = BarBuilder(bar_interval_ms)
        self.stats: Counter[str] = Counter()
        self._metrics: dict[str, _VenueMetrics] = {}
        self.clock_ms = 0   # receipt clock: the latest ts_recv seen
        self._gap_logged: dict[str, float] = {}

    def _m(self, venue: str) -> _VenueMetrics:
        found = self._metrics.get(venue)
        if found is None:
            found = self._metrics[venue] = _VenueMetrics(venue)
        return found

    def dead_letter(self, source: str, raw: str, reason_class: str, message: str, ts_recv: int) -> Record:
        metrics.DEADLETTERS.labels(source, reason_class).inc()
        letter = dead_letter(source, raw, f"{reason_class}: {message}", ts_recv)
        return (_DL, source.encode(), encode(letter))

    def process(self, raw: RawFrame) -> list[Record]:
        """Records for one frame (dead letter included); counts the frame's outcome."""
        ts_recv = raw.ts_recv
        if ts_recv > self.clock_ms:
            self.clock_ms = ts_recv
        venue = self.venues.get(raw.venue)
        source = raw.venue if venue is not None else UNKNOWN_VENUE
        m = self._m(source)
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
            log.exception("adapter %s raised on a frame", source)
            return self._reject(m, source, frame, ADAPTER_ERROR, f"{type(exc).__name__}: {exc}", ts_recv)
        if not events:
            if rejected:     # nothing usable: the frame as received, with its first bad row's reason
                first, more = rejected[0], len(rejected) - 1
                message = f"row {first.index}: {first.message}" + (f" (and {more} more bad rows)" if more else "")
                return self._reject(m, source, frame, first.reason_class, message, ts_recv)
            m.frames[IGNORED].inc()
            self.stats[IGNORED] += 1
            return []
        m.frames[OK].inc()
        self.stats[OK] += 1
        m.last_event.set(time.time())
        records = self._records(m, events, venue.sequential_trade_ids, frame, spans)  # type: ignore[union-attr]
        if rejected:
            records += [self._row_letter(source, row, ts_recv) for row in rejected]
        return records

    def _row_letter(self, source: str, row: RowError, ts_recv: int) -> Record:
        """A bad row of a frame whose other rows are published: dead-lettered alone, as a one-row
        frame of the venue's format."""
        self.stats["bad_rows"] += 1
        return self.dead_letter(source, row.raw, row.reason_class, f"row {row.index}: {row.message}", ts_recv)

    def _reject(self, m: _VenueMetrics, source: str, frame: str, reason_class: str, message: str,
                ts_recv: int) -> list[Record]:
        m.frames[DEADLETTER].inc()
        self.stats[DEADLETTER] += 1
        return [self.dead_letter(source, frame, reason_class, message, ts_recv)]

    def _records(self, m: _VenueMetrics, events: list[Trade | Liquidation], sequential: bool,
                 frame: str, spans: dict[int, int]) -> list[Record]:
        out: list[Record] = []
        dedupe = self.dedupe.is_duplicate
        for index, event in enumerate(events):
            if isinstance(event, Trade):
                if dedupe((event.exchange, event.instrument, event.trade_id), event.ts_recv):
                    m.duplicates.inc()
                    self.stats["duplicates"] += 1
                    continue
                m.trades.inc()
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
                    m.duplicates.inc()
                    self.stats["duplicates"] += 1
                    continue
                m.liquidations.inc()
                self.stats["liquidations"] += 1
                value = encode(_with_raw(event, frame) if self.keep_raw else event)
                out.append((_LIQS, event.instrument.encode(), value))
            m.lag.observe(max(0, event.ts_recv - event.ts) / 1000.0)
        return out

    def _gap(self, m: _VenueMetrics, gap: TradeGap) -> Record:
        m.gaps.inc()
        m.missing.inc(gap.missing)
        self.stats["gaps"] += 1
        now = time.monotonic()
        if now - self._gap_logged.get(gap.exchange, -GAP_LOG_INTERVAL) >= GAP_LOG_INTERVAL:
            self._gap_logged[gap.exchange] = now
            log.warning("trade-id gap on %s %s: %d missing between %s and %s (gaps are logged at most every "
                        "%.0f s per venue; every one is counted and published)", gap.exchange, gap.instrument,
                        gap.missing, gap.after_trade_id, gap.before_trade_id, GAP_LOG_INTERVAL)
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
