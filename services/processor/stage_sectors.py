"""Stage 2 (one partition): sector caps, candles and indicators from every asset's minute buckets.

Stage 1 sends each changed bucket (absolute value) to a single-partition internal topic; this
stage mirrors every asset's ring, so sector figures are computed at the processor-wide event time
``now`` (the largest trade ts seen) exactly as the oracle does. Cap-series candles close on the
event-time watermark of the source partitions (services/processor/watermark.py), asset candles on
the asset's own time. Pure: no Faust here.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from services.processor.assetbook import AssetBook, Bucket, WindowStats
from services.processor.candles import INTERVAL_MS, bucket_ohlc, candle_value, open_time_of, points_ohlc
from services.processor.emitter import Conflator
from services.processor.reference import Universe
from services.processor.stage_assets import bucket_key, split_key
from services.processor.timeutil import MINUTE_MS, minute_of, pct_change, ring_start
from services.processor.watermark import SOURCE_KEY_PREFIX, Watermark, progress_record, source_key

LEGACY_SOURCE = -1     # a record without ``src``: its own source, progressing with its buckets

TableChange = tuple[int, str, bytes | None]
TOP_N = 5
INTERVALS = tuple(INTERVAL_MS)


class Mirror(AssetBook):
    """An asset's ring as stage 1 sees it, with its minutes kept sorted (for "last close at m").

    The closes of buckets that left the ring are kept (``old_*``) while they are inside the ring
    of the cap series' close time: a partition ahead of the watermark evicts buckets of intervals
    not yet closed, and the cap points of those intervals still see them.
    """

    __slots__ = ("closes", "minutes", "old_closes", "old_minutes")

    def __init__(self, asset: str) -> None:
        super().__init__(asset)
        self.minutes: list[int] = []
        self.closes: dict[int, float] = {}        # minute -> close of the buckets held (read per point)
        self.old_minutes: list[int] = []
        self.old_closes: list[float] = []

    def put(self, minute: int, bucket: Bucket) -> int | None:
        """Store a bucket; returns the earliest minute whose "last close" changed by an eviction."""
        if minute not in self.buckets:
            bisect.insort(self.minutes, minute)
        leaving = bisect.bisect_left(self.minutes, ring_start(minute_of(max(self.now_ts, bucket.close_key[0]))))
        for old in self.minutes[:leaving]:
            if old in self.closes and old != minute:
                self.old_minutes.append(old)
                self.old_closes.append(self.closes[old])
        evicted = self.set_bucket(minute, bucket)
        self.closes[minute] = bucket.close
        for gone in evicted:
            self.minutes.remove(gone)
            self.closes.pop(gone, None)
        if minute not in self.buckets and minute in self.minutes:   # older than the ring: not kept
            self.minutes.remove(minute)
            self.closes.pop(minute, None)
        return min(evicted) if evicted else None

    def close_at(self, minute: int, floor: int | None = None) -> float | None:
        """Close of the latest bucket at or before ``minute``; an evicted one only when its minute
        is at or after ``floor``."""
        i = bisect.bisect_right(self.minutes, minute)
        if i:
            return self.closes[self.minutes[i - 1]]
        j = bisect.bisect_right(self.old_minutes, minute)
        return self.old_closes[j - 1] if j and floor is not None and self.old_minutes[j - 1] >= floor else None

    def forget_before(self, floor: int) -> None:
        """Drop the evicted closes before ``floor``."""
        j = bisect.bisect_left(self.old_minutes, floor)
        if j:
            del self.old_minutes[:j], self.old_closes[:j]


def sector_member(asset: str, supply: float, stats: WindowStats | None, stablecoin: bool) -> dict[str, Any]:
    price = stats.price if stats else (1.0 if stablecoin else None)
    ago = (stats.price_24h_ago if stats else (1.0 if stablecoin else None))
    return {"asset": asset, "price": price, "cap_usd": None if price is None else price * supply,
            "cap_24h_ago_usd": None if ago is None else ago * supply, "change_24h_pct": pct_change(price, ago),
            "volume_24h_usd": stats.volume_24h if stats else 0.0,
            "volume_prev_24h_usd": stats.volume_prev_24h if stats else 0.0}


def sector_value(sector: str, name: str, members: list[dict[str, Any]], now_ts: int) -> dict[str, Any]:
    priced = [m for m in members if m["cap_usd"] is not None]
    cap = sum(m["cap_usd"] for m in priced)
    ago = sum(m["cap_24h_ago_usd"] for m in priced) if priced else None
    vol = sum(m["volume_24h_usd"] for m in members)
    vprev = sum(m["volume_prev_24h_usd"] for m in members)
    listed = [{"asset": m["asset"], "price": m["price"], "cap_usd": m["cap_usd"],
               "change_24h_pct": m["change_24h_pct"]} for m in members]
    listed.sort(key=lambda m: (m["cap_usd"] is None, -(m["cap_usd"] or 0.0), m["asset"]))
    changed = [m for m in listed if m["change_24h_pct"] is not None]
    return {"sector": sector, "name": name, "cap_usd": cap, "cap_24h_ago_usd": ago,
            "change_24h_pct": pct_change(cap, ago) if priced else None, "volume_24h_usd": vol,
            "volume_prev_24h_usd": vprev, "volume_change_24h_pct": pct_change(vol, vprev), "members": listed,
            "top_gainers": sorted(changed, key=lambda m: (-m["change_24h_pct"], m["asset"]))[:TOP_N],
            "top_losers": sorted(changed, key=lambda m: (m["change_24h_pct"], m["asset"]))[:TOP_N],
            "ts": now_ts}


class SectorStage:
    def __init__(self, universe: Universe, emit_interval: float, lateness_ms: int = 0, idle_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.universe = universe
        self.watermark = Watermark(lateness_ms, idle_s)
        self.clock = clock
        self.cap_minute = -1                       # minute of the close time the cap series were closed to
        self._sector_ids: list[str] | None = None  # the universe's sectors, cached until it changes
        self.mirrors: dict[str, Mirror] = {}
        self.now_ts = -1
        self.sectors = Conflator(emit_interval)
        self.candles = Conflator(emit_interval)
        self.dirty_from: int | None = None        # earliest minute whose cap points must be recomputed
        self.stale: list[tuple[int, int]] = []     # [from, to) minutes an eviction changed
        self.points_from = 0                       # no cap point is kept before this minute
        self.points_to = -1                        # cap points are computed up to this minute
        self.points: dict[str, dict[int, float]] = {}
        self.open_times: dict[str, int] = {}       # series:interval -> open_time of its current interval
        self.closed: list[dict[str, Any]] = []     # closed candles not yet emitted (never conflated)
        self.max_ts_recv = 0

    # -- input ----------------------------------------------------------------------------

    def apply(self, records: Iterable[bytes], now: float | None = None) -> list[TableChange]:
        """Apply minute records and source progress records received at wall time ``now``."""
        wall = self.clock() if now is None else now
        changes: list[TableChange] = []
        for raw in records:
            rec = orjson.loads(raw)
            wm = rec.get("wm")
            if "asset" not in rec:      # a source's progress: stored so a restart keeps the watermark
                src = int(rec["src"])
                self.watermark.observe(src, int(wm), wall, bool(rec.get("caught_up", True)))
                changes.append((0, source_key(src), progress_record(src, self.watermark.progress[src])))
                self._close_caps()
                continue
            asset, minute = rec["asset"], int(rec["minute"])
            bucket = Bucket.from_json(rec["bucket"])
            self._put(asset, minute, bucket)
            if "src" in rec:
                self.watermark.observe(int(rec["src"]), None if wm is None else int(wm), wall)
            else:
                self.watermark.observe(LEGACY_SOURCE, bucket.close_key[0], wall)
            self._close_caps()
            changes.append((0, bucket_key(asset, minute), raw))
            self.max_ts_recv = max(self.max_ts_recv, bucket.close_key[1])
        self.watermark.tick(wall)
        self._close_caps()
        if changes:
            self._mark_caps()
        return changes

    def _mark_caps(self) -> None:
        """Every sector moves with the processor-wide now (marked once per batch, not per record)."""
        for sector in self.sector_ids():
            self.sectors.mark(sector)
            for interval in INTERVALS:
                self.candles.mark(f"{sector}:{interval}")

    def sector_ids(self) -> list[str]:
        if self._sector_ids is None:
            self._sector_ids = self.universe.sectors()
        return self._sector_ids

    def _close_caps(self) -> None:
        close_time = self.watermark.close_time()
        if close_time is None:
            return
        close_time = min(close_time, self.now_ts)
        if minute_of(close_time) != self.cap_minute:   # every interval boundary is a minute boundary
            self.cap_minute = minute_of(close_time)
            self._close_intervals(None, close_time)
            floor = self.history_floor()
            for mirror in self.mirrors.values():
                mirror.forget_before(floor)

    def history_floor(self) -> int:
        """Oldest evicted close the cap points use: the ring's start at the cap series' close time
        (so with no partition ahead, points are those of each asset's own ring, as the oracle's)."""
        close_time = self.watermark.close_time()
        return ring_start(minute_of(self.now_ts if close_time is None else min(close_time, self.now_ts)))

    def cap_floor(self) -> int:
        """Start of the oldest cap-series interval not closed yet (its points are still needed)."""
        opens = [t for s in self.sector_ids() if (t := self.open_times.get(f"{s}:1d")) is not None]
        return min(opens) if opens else ring_start(minute_of(self.now_ts))

    def _put(self, asset: str, minute: int, bucket: Bucket, close: bool = True) -> None:
        mirror = self.mirrors.get(asset)
        if mirror is None:
            mirror = self.mirrors[asset] = Mirror(asset)
        if close:
            self._close_intervals(asset, max(mirror.now_ts, bucket.close_key[0]))
        evicted_from = mirror.put(minute, bucket)
        self.now_ts = max(self.now_ts, mirror.now_ts)
        self.dirty_from = minute if self.dirty_from is None else min(self.dirty_from, minute)
        if evicted_from is not None and (not mirror.minutes or mirror.minutes[0] > ring_start(minute_of(self.now_ts))):
            # the asset's price before its oldest remaining bucket is no longer known
            self.stale.append((evicted_from, mirror.minutes[0] if mirror.minutes else minute_of(self.now_ts)))
        self._track_intervals(asset)
        for interval in INTERVALS:
            self.candles.mark(f"{asset}:{interval}")

    def rebuild(self, items: Iterable[tuple[str, bytes]]) -> None:
        """Replace the state by the table's (after recovery). Every series resumes in the interval
        it was in: assets at their own time, cap series at the restored watermark (never later, so
        no cap candle closes early; without a stored watermark, at ``now``, so none closes twice)."""
        self.mirrors.clear()
        self.now_ts, self.dirty_from, self.points, self.open_times = -1, None, {}, {}
        self.stale, self.points_from, self.points_to = [], 0, -1
        self.watermark.reset()
        self.cap_minute = -1
        buckets = []
        for key, raw in items:
            rec = orjson.loads(raw)
            if key.startswith(SOURCE_KEY_PREFIX + "|"):
                self.watermark.restore(int(rec["src"]), int(rec["wm"]))
            else:
                buckets.append((split_key(key)[1], rec))
        for _minute, rec in sorted(buckets, key=lambda mr: mr[0]):
            self._put(rec["asset"], int(rec["minute"]), Bucket.from_json(rec["bucket"]), close=False)
        self.open_times = {}
        close_time = self.watermark.close_time()
        for series in (*self.mirrors, *self.universe.sectors()):
            series_now = self.series_now(series)
            if series not in self.mirrors and close_time is not None:
                series_now = min(series_now, close_time)
            if series_now >= 0:
                for interval in INTERVALS:
                    self.open_times[f"{series}:{interval}"] = open_time_of(series_now, interval)
        self._mark_caps()

    def configure(self, lateness_ms: int, idle_s: float, sources: Iterable[int]) -> None:
        """Close policy of the cap series (settings) and the source partitions expected to report."""
        self.watermark.lateness_ms, self.watermark.idle_s = lateness_ms, idle_s
        self.watermark.expect(sources)

    # -- interval closes --------------------------------------------------------------------

    def _track_intervals(self, asset: str) -> None:
        """Remember the interval each touched series is in (the one its next close will end)."""
        for series in (asset, *self.sector_ids()):
            series_now = self.series_now(series)
            if series_now < 0:
                continue
            for interval in INTERVALS:
                key = f"{series}:{interval}"
                if key not in self.open_times:
                    self.open_times[key] = open_time_of(series_now, interval)

    def _close_intervals(self, asset: str | None, new_now: int) -> None:
        """Queue the closed candle of every interval a series leaves when its now becomes ``new_now``.

        Computed at once, before later input can evict its buckets (a fast replay crosses many
        intervals within one emission interval); ``asset`` None stands for the cap series.
        """
        series_list = [asset] if asset is not None else self.sector_ids()
        refreshed = False
        for series in series_list:
            for interval in INTERVALS:
                key = f"{series}:{interval}"
                previous = self.open_times.get(key)
                new_open = open_time_of(new_now, interval)
                if previous is None or previous >= new_open:
                    continue
                if asset is None and not refreshed:
                    self.refresh_points()
                    refreshed = True
                candle = self.candle(series, interval, previous, closed=True)
                if candle is not None:
                    self.closed.append(candle)
                self.open_times[key] = new_open

    def on_universe_change(self) -> None:
        self._sector_ids = None
        if self.mirrors:
            self.dirty_from = ring_start(minute_of(self.now_ts))
        self._mark_caps()

    # -- sector caps ----------------------------------------------------------------------

    def member_rows(self) -> dict[str, dict[str, Any]]:
        rows = {}
        for asset, info in self.universe.assets.items():
            mirror = self.mirrors.get(asset)
            stats = mirror.stats(self.now_ts) if mirror and self.now_ts >= 0 else None
            rows[asset] = sector_member(asset, info.circulating_supply, stats, info.stablecoin)
        return rows

    def sector_values(self, sectors: list[str]) -> dict[str, dict[str, Any]]:
        if self.now_ts < 0 or not sectors:
            return {}
        rows = self.member_rows()
        names = self.universe.sector_names
        return {s: sector_value(s, names.get(s, s), [rows[a] for a in self.universe.members(s)], self.now_ts)
                for s in sectors}

    # -- cap points and candles -----------------------------------------------------------

    def _point(self, members: list[str], minute: int, floor: int) -> float | None:
        total = 0.0
        priced = False
        for asset in members:
            info = self.universe.assets[asset]
            mirror = self.mirrors.get(asset)
            price = mirror.close_at(minute, floor) if mirror else None
            if price is None and info.stablecoin:
                price = 1.0
            if price is not None:
                total += price * info.circulating_supply
                priced = True
        return total if priced else None

    def refresh_points(self) -> None:
        """Recompute the cap series' minute-close points from ``dirty_from`` to ``now`` and in the
        ranges evictions changed; drop the points older than the ring (incrementally)."""
        now_minute = minute_of(self.now_ts)
        if self.now_ts < 0 or (self.dirty_from is None and not self.stale and self.points_to >= now_minute):
            return
        start = min(ring_start(now_minute), self.cap_floor())
        end = now_minute + MINUTE_MS
        ranges = [(max(a, start), min(b, end)) for a, b in self.stale]
        ranges.append((max(self.points_to + MINUTE_MS, start), end))
        if self.dirty_from is not None:
            ranges.append((max(self.dirty_from, start), end))
        minutes = sorted({m for a, b in ranges for m in range(a, b, MINUTE_MS)})
        floor = self.history_floor()
        for sector in self.sector_ids():
            pts = self.points.setdefault(sector, {})
            if start - self.points_from > len(pts) * MINUTE_MS:
                for old in [m for m in pts if m < start]:
                    del pts[old]
            else:
                for old in range(self.points_from, start, MINUTE_MS):
                    pts.pop(old, None)
            members = self.universe.members(sector)
            for minute in minutes:
                value = self._point(members, minute, floor)
                if value is None:
                    pts.pop(minute, None)
                else:
                    pts[minute] = value
        self.points_from, self.points_to = max(self.points_from, start), now_minute
        self.dirty_from, self.stale = None, []

    def candle(self, series: str, interval: str, open_time: int, closed: bool) -> dict[str, Any] | None:
        end = open_time + INTERVAL_MS[interval]
        mirror = self.mirrors.get(series)
        if mirror is not None:
            lo, hi = bisect.bisect_left(mirror.minutes, open_time), bisect.bisect_left(mirror.minutes, end)
            ohlc = bucket_ohlc((m, mirror.buckets[m]) for m in mirror.minutes[lo:hi])
            ts = mirror.now_ts if not closed else min(mirror.now_ts, end - 1)
        else:
            pts = self.points.get(series, {})
            ohlc = points_ohlc(pts[m] for m in range(open_time, end, MINUTE_MS) if m in pts)
            ts = self.now_ts if not closed else min(self.now_ts, end - 1)
        return None if ohlc is None else candle_value(series, interval, open_time, ohlc, closed, ts)

    def series_now(self, series: str) -> int:
        mirror = self.mirrors.get(series)
        return mirror.now_ts if mirror is not None else self.now_ts

    def due_candles(self, now: float) -> list[dict[str, Any]]:
        """Candles to emit: every closed candle queued since the last call (in order, never
        conflated), then the forming candle of each series whose emission interval has passed."""
        out, self.closed = self.closed, []
        keys = self.candles.ready(now)
        if not keys:
            return out
        self.refresh_points()
        for key in keys:
            series, interval = key.rsplit(":", 1)
            series_now = self.series_now(series)
            if series_now < 0:
                continue
            forming = self.candle(series, interval, open_time_of(series_now, interval), closed=False)
            if forming is not None and self.candles.changed(key, forming, now):
                out.append(forming)
        return out

    def due_sectors(self, now: float) -> list[dict[str, Any]]:
        keys = self.sectors.ready(now)
        values = self.sector_values(keys)
        return [v for s, v in values.items() if self.sectors.changed(s, v, now)]
