"""The pipeline's tally made visible: Prometheus metrics and log lines (the clock side of ingest).

:class:`Pipeline` only counts; :class:`TallyObserver` is what the async shell calls with each
:class:`Tally` it takes. Gap warnings are rate-limited per venue (every gap is still counted and
published); an adapter that raised is logged once per tally with its first traceback.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from services.ingestor import metrics
from services.ingestor.pipeline import DEADLETTER, IGNORED, OK, Tally, VenueTally

log = logging.getLogger("cryptopulse.ingestor.pipeline")

GAP_LOG_INTERVAL = 10.0


class _VenueMetrics:
    """Pre-bound metric children of one venue (``.labels()`` is slow)."""

    def __init__(self, venue: str) -> None:
        self.frames = {o: metrics.FRAMES.labels(venue, o) for o in (OK, IGNORED, DEADLETTER)}
        self.trades = metrics.EVENTS.labels(venue, "trade")
        self.liquidations = metrics.EVENTS.labels(venue, "liquidation")
        self.duplicates = metrics.DUPLICATES.labels(venue)
        self.gaps = metrics.TRADE_GAPS.labels(venue)
        self.missing = metrics.MISSING_TRADES.labels(venue)
        self.lag = metrics.EVENT_LAG.labels(venue)
        self.last_event = metrics.LAST_EVENT.labels(venue)


class TallyObserver:
    def __init__(self, wall: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.wall = wall
        self.monotonic = monotonic
        self._metrics: dict[str, _VenueMetrics] = {}
        self._gap_logged: dict[str, float] = {}

    def _m(self, venue: str) -> _VenueMetrics:
        found = self._metrics.get(venue)
        if found is None:
            found = self._metrics[venue] = _VenueMetrics(venue)
        return found

    def apply(self, tally: Tally) -> None:
        for venue, counts in tally.venues.items():
            self._venue(self._m(venue), counts)
        for (source, reason), count in tally.deadletters.items():
            metrics.DEADLETTERS.labels(source, reason).inc(count)
        for venue, (count, first) in tally.adapter_errors.items():
            log.error("adapter %s raised on %d frame(s) (dead-lettered); the first:\n%s", venue, count, first)

    def _venue(self, m: _VenueMetrics, counts: VenueTally) -> None:
        for outcome, count in counts.frames.items():
            if count:
                m.frames[outcome].inc(count)
        if counts.frames[OK]:
            m.last_event.set(self.wall())
        for metric, count in ((m.trades, counts.trades), (m.liquidations, counts.liquidations),
                              (m.duplicates, counts.duplicates), (m.gaps, counts.gaps),
                              (m.missing, counts.missing)):
            if count:
                metric.inc(count)
        for lag in counts.lags:
            m.lag.observe(lag)
        gap = counts.first_gap
        if gap is not None:
            now = self.monotonic()
            if now - self._gap_logged.get(gap.exchange, -GAP_LOG_INTERVAL) >= GAP_LOG_INTERVAL:
                self._gap_logged[gap.exchange] = now
                log.warning("trade-id gap on %s %s: %d missing between %s and %s (gaps are logged at most every "
                            "%.0f s per venue; every one is counted and published)", gap.exchange,
                            gap.instrument, gap.missing, gap.after_trade_id, gap.before_trade_id, GAP_LOG_INTERVAL)
