"""Stage 2 (one partition): sector caps, candles and indicators from every asset's minute buckets.

Stage 1 sends each changed bucket (absolute value) to a single-partition internal topic; this
stage mirrors every asset's ring, so sector figures are computed at the processor-wide event time
``now`` (the largest trade ts seen) exactly as the oracle does. Cap-series candles close on the
event-time watermark of the source partitions (services/processor/watermark.py), asset candles on
the asset's own time. Pure: no Faust here.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import orjson

from services.common.codec import kept
from services.processor.assetbook import AssetBook, Bucket, WindowStats
from services.processor.candles import INTERVAL_MS, candle_value, open_time_of, points_ohlc, ring_ohlc
from services.processor.capline import CapLine
from services.processor.emitter import Conflator
from services.processor.reference import AssetInfo, Universe
from services.processor.stage_assets import bucket_key, split_key
from services.processor.timeutil import MINUTE_MS, RING_MINUTES, minute_of, pct_change, ring_start
from services.processor.watermark import SOURCE_KEY_PREFIX, Watermark, progress_record, source_key

LEGACY_SOURCE = -1     # a record without ``src``: its own source, progressing with its buckets

TableChange = tuple[int, str, bytes | None]
TOP_N = 5
INTERVALS = tuple(INTERVAL_MS)
LINE_SLOTS = 2 * RING_MINUTES     # minutes a cap line holds at most (more is folded into its head)
HOLD_MAX_RECORDS = 300_000        # minute records held for the release time at most (~120 MB)
RELEASE_SLICE = 500               # held records applied per call at least (~25-50 ms of the event loop)


PriceStep = tuple[int, int | None, float | None, float | None]   # price on [start, end) went from -> to


class Mirror(AssetBook):
    """An asset's ring as stage 1 sees it; its price is a step function of event time: the close of
    each held bucket, carried forward to the next one.

    The closes of buckets that left the ring are kept (``old_*``) while they are at or after the
    floor (the ring's start at the cap series' close time): a partition ahead of the watermark
    evicts buckets of intervals not yet closed, and the cap points of those intervals still see
    them. Every change of the step function is returned as a :data:`PriceStep`.
    """

    __slots__ = ("left", "old_closes", "old_minutes")

    def __init__(self, asset: str) -> None:
        super().__init__(asset)
        self.old_minutes: list[int] = []
        self.old_closes: list[float] = []
        self.left: list[int] = []       # minutes that left the ring (or never entered), for the table

    def put(self, minute: int, bucket: Bucket, floor: int) -> list[PriceStep]:
        """Store a bucket; returns the price steps that changed (evictions first)."""
        ring = self.buckets
        if self.now_ts >= 0 and minute < ring_start(minute_of(self.now_ts)):
            self.left.append(minute)
            return []                                     # older than the ring: not kept
        out: list[PriceStep] = []
        start = ring_start(minute_of(max(self.now_ts, bucket.close_key[0])))
        j = ring.live.find(1, ring.lo, ring.clamp(start))
        while j >= 0:                                     # the buckets about to leave, oldest first
            gone = ring.base + j * MINUTE_MS
            nxt = ring.live.find(1, j + 1)
            self.left.append(gone)
            if gone >= floor:
                self.old_minutes.append(gone)
                self.old_closes.append(ring.close[j])
            else:                                         # nothing older is kept: unpriced until the next
                out.append((gone, None if nxt < 0 else ring.base + nxt * MINUTE_MS, ring.close[j], None))
            j = nxt if 0 <= nxt < ring.clamp(start) else -1
        k = ring.index(minute)
        before = ring.close[k] if k >= 0 else None
        self.set_bucket(minute, bucket)
        k = ring.index(minute)
        if k < 0:
            return out
        close = ring.close[k]
        nxt = ring.live.find(1, k + 1)
        end = None if nxt < 0 else ring.base + nxt * MINUTE_MS
        if before is None:
            prev = ring.live.rfind(1, ring.lo, k)
            before = ring.close[prev] if prev >= 0 else self.old_closes[-1] if self.old_closes else None
        if before != close:
            out.append((minute, end, before, close))
        return out

    def forget_before(self, floor: int) -> list[PriceStep]:
        """Drop the evicted closes before ``floor``; returns the price steps that changed."""
        out: list[PriceStep] = []
        while self.old_minutes and self.old_minutes[0] < floor:
            minute, close = self.old_minutes.pop(0), self.old_closes.pop(0)
            end = self.old_minutes[0] if self.old_minutes else self.buckets.oldest()
            out.append((minute, end, close, None))
        return out

    def closes(self) -> Iterator[tuple[int, float]]:
        """(minute, close) of every price step, oldest first."""
        yield from zip(self.old_minutes, self.old_closes, strict=True)
        ring = self.buckets
        j = ring.live.find(1, ring.lo)
        while j >= 0:
            yield ring.base + j * MINUTE_MS, ring.close[j]
            j = ring.live.find(1, j + 1)


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


def record_time(rec: dict[str, Any]) -> int:
    """Event time of a minute record: its bucket's close (the latest bar in it)."""
    return int(rec["bucket"][5][0])


def unpacked(messages: Iterable[bytes]) -> Iterator[tuple[dict[str, Any], bytes]]:
    """(record, its own bytes) of messages holding one record or an array of them."""
    for raw in messages:
        data = orjson.loads(raw)
        if isinstance(data, list):
            for rec in data:
                yield rec, orjson.dumps(rec)
        else:
            yield data, raw


class SectorStage:
    def __init__(self, universe: Universe, emit_interval: float, lateness_ms: int = 0, idle_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic, candle_interval: float | None = None) -> None:
        """``emit_interval`` conflates the sector values, ``candle_interval`` (default: the same) the
        forming candles; closed candles are never conflated."""
        self.universe = universe
        self.watermark = Watermark(lateness_ms, idle_s)
        self.clock = clock
        self.cap_minute = -1                       # minute of the close time the cap series were closed to
        self._sector_ids: list[str] | None = None  # the universe's sectors, cached until it changes
        self._caps_tracked = False                 # the cap series' current intervals are known
        self._sectors_of: dict[str, list[str]] = {}  # asset -> the sectors it is a member of (with total)
        self.mirrors: dict[str, Mirror] = {}
        self.with_old: set[str] = set()            # mirrors holding evicted closes
        self.now_ts = -1
        self.floor = -1                            # no evicted close before this minute is used
        self.sectors = Conflator(emit_interval)
        self.candles = Conflator(emit_interval if candle_interval is None else candle_interval)
        self.lines: dict[str, CapLine] = {}
        self.open_times: dict[str, int] = {}       # series:interval -> open_time of its current interval
        self._day_opens = 0                        # counts changes of the daily open times (cache key)
        self._cap_floor: tuple[int, int | None] = (-1, None)   # (_day_opens when taken, cap floor)
        self.closed: list[dict[str, Any]] = []     # closed candles not yet emitted (never conflated)
        self.max_ts_recv = 0
        self.held: list[tuple[int, int, bytes]] = []   # heap of (event ts, arrival seq, minute record)
        self._held_seq = 0
        self.forced = 0                            # records applied before the release time reached them
        self.table_deletes: list[TableChange] = []   # keys of buckets that left the mirrors, to delete
        self._rebuild_lines()

    # -- input ----------------------------------------------------------------------------

    def apply(self, records: Iterable[bytes], now: float | None = None) -> list[TableChange]:
        """Take minute records and source progress records received at wall time ``now`` (each
        message one record or a JSON array of them, see :func:`stage_assets.pack_records`).

        Every record goes to the table at once; a minute record reaches the mirrors only when the
        sources' release time has passed its bucket's close (:meth:`release`), so every figure is
        computed from all the bars up to the event time it shows, as the oracle computes it."""
        wall = self.clock() if now is None else now
        changes, self.table_deletes = self.table_deletes, []   # buckets that left the mirrors since
        received = 0
        for rec, raw in unpacked(records):
            wm = rec.get("wm")
            if "asset" not in rec:      # a source's progress: stored so a restart keeps the watermark
                src = int(rec["src"])
                self.watermark.observe(src, int(rec["wm"]), wall, bool(rec.get("caught_up", True)))
                changes.append((0, source_key(src), progress_record(src, self.watermark.progress[src])))
                continue
            event_ts = record_time(rec)
            if "src" in rec:
                self.watermark.observe(int(rec["src"]), None if wm is None else int(wm), wall)
            else:
                self.watermark.observe(LEGACY_SOURCE, event_ts, wall)
            changes.append((0, bucket_key(rec["asset"], int(rec["minute"])), raw))
            self.hold(event_ts, raw)
            received += 1
        self.release(wall, limit=max(RELEASE_SLICE, 2 * received))   # drains faster than it fills
        return changes

    def hold(self, event_ts: int, raw: bytes) -> None:
        heapq.heappush(self.held, (event_ts, self._held_seq, kept(raw)))
        self._held_seq += 1

    def release(self, now: float, limit: int | None = None) -> None:
        """Apply the held minute records up to the sources' release time, oldest event time first,
        at most ``limit`` of them (the rest on a later call: a lagging partition that catches up
        must not block the event loop with a whole backlog); beyond ``HOLD_MAX_RECORDS`` the oldest
        are applied anyway (counted in ``forced``)."""
        self.watermark.tick(now)
        held = self.held
        until = self.watermark.release_time()
        close_time = self.watermark.close_time()     # the loop below does not move the watermark
        budget = len(held) if limit is None else limit
        released = 0
        while held and ((released < budget and until is not None and held[0][0] <= until)
                        or len(held) > HOLD_MAX_RECORDS):
            event_ts, _seq, raw = heapq.heappop(held)
            if until is None or event_ts > until:
                self.forced += 1
            rec = orjson.loads(raw)
            bucket = Bucket.from_json(rec["bucket"])
            self._put(rec["asset"], int(rec["minute"]), bucket)
            self._close_caps(close_time)
            self.max_ts_recv = max(self.max_ts_recv, bucket.close_key[1])
            released += 1
        self._close_caps(close_time)
        if released:
            self._mark_caps()

    def take_forced(self) -> int:
        """Forced releases since the last call (for the metrics)."""
        forced, self.forced = self.forced, 0
        return forced

    def _mark_caps(self) -> None:
        """Every sector moves with the processor-wide now (marked once per batch, not per record)."""
        for sector in self.sector_ids():
            self.sectors.mark(sector)
            for interval in INTERVALS:
                self.candles.mark(f"{sector}:{interval}")

    def sector_ids(self) -> list[str]:
        if self._sector_ids is None:
            self._sector_ids = self.universe.sectors()
            self._day_opens += 1
            self._caps_tracked = False
            self._sectors_of = {}
            for sector in self._sector_ids:
                for asset in self.universe.members(sector):
                    self._sectors_of.setdefault(asset, []).append(sector)
        return self._sector_ids

    def _close_caps(self, close_time: int | None) -> None:
        """Close the cap series' intervals up to ``close_time`` (the watermark's) or ``now_ts``."""
        if close_time is None:
            return
        close_time = min(close_time, self.now_ts)
        if minute_of(close_time) != self.cap_minute:   # every interval boundary is a minute boundary
            self.cap_minute = minute_of(close_time)
            self._close_intervals(None, close_time)
            self._advance_floor()
            self._trim_lines()

    def history_floor(self) -> int:
        """Oldest evicted close the cap points use: the ring's start at the cap series' close time
        (so with no partition ahead, points are those of each asset's own ring, as the oracle's)."""
        close_time = self.watermark.close_time()
        return ring_start(minute_of(self.now_ts if close_time is None else min(close_time, self.now_ts)))

    def cap_floor(self) -> int:
        """Start of the oldest cap-series interval not closed yet (its points are still needed)."""
        sectors = self.sector_ids()
        if self._cap_floor[0] != self._day_opens:      # a cap series' day moved since it was taken
            opens = [t for s in sectors if (t := self.open_times.get(f"{s}:1d")) is not None]
            self._cap_floor = (self._day_opens, min(opens) if opens else None)
        floor = self._cap_floor[1]
        return floor if floor is not None else ring_start(minute_of(self.now_ts))

    def points_floor(self) -> int:
        """No cap point before this minute is read (neither by the forming nor by a closing candle)."""
        return min(ring_start(minute_of(self.now_ts)), self.cap_floor())

    def _put(self, asset: str, minute: int, bucket: Bucket, close: bool = True) -> None:
        mirror = self.mirrors.get(asset)
        if mirror is None:
            mirror = self.mirrors[asset] = Mirror(asset)
        if close:
            self._close_intervals(asset, max(mirror.now_ts, bucket.close_key[0]))
        steps = mirror.put(minute, bucket, self.floor)
        if mirror.left:      # the table keeps what the mirror keeps: one ring per asset
            self.table_deletes += [(0, bucket_key(asset, gone), None) for gone in mirror.left]
            mirror.left.clear()
        if mirror.old_minutes:
            self.with_old.add(asset)
        self.now_ts = max(self.now_ts, mirror.now_ts)
        self._move_lines(asset, steps)
        self._track_intervals(asset)
        for interval in INTERVALS:
            self.candles.mark(f"{asset}:{interval}")

    def _advance_floor(self) -> None:
        """Forget the evicted closes before the ring's start at the cap series' close time (kept
        until a watermark exists: a source may still report from far behind)."""
        floor = self.history_floor()
        if self.watermark.close_time() is None or floor <= self.floor:
            return
        self.floor = floor
        for asset in list(self.with_old):
            mirror = self.mirrors[asset]
            self._move_lines(asset, mirror.forget_before(floor))
            if not mirror.old_minutes:
                self.with_old.discard(asset)

    # -- cap lines --------------------------------------------------------------------------

    def _contribution(self, info: AssetInfo, price: float | None) -> tuple[float, int]:
        if price is None:
            return (info.circulating_supply, 1) if info.stablecoin else (0.0, 0)
        return price * info.circulating_supply, 1

    def _move_lines(self, asset: str, steps: list[PriceStep]) -> None:
        """Add an asset's price steps to the cap lines of its sectors."""
        info = self.universe.assets.get(asset)
        if info is None or not steps:
            return
        self.sector_ids()
        lines = [self.lines[s] for s in self._sectors_of.get(asset, ())]
        for start, end, before, after in steps:
            v1, c1 = self._contribution(info, after)
            v0, c0 = self._contribution(info, before)
            value, count = v1 - v0, c1 - c0
            for line in lines:
                line.change(start, end, value, count)

    def _rebuild_lines(self) -> None:
        """The cap lines from the universe and every mirror's price steps (start, universe change)."""
        self._sector_ids = None
        self.lines = {}
        for sector in self.sector_ids():
            head = [self._contribution(self.universe.assets[a], None) for a in self.universe.members(sector)]
            self.lines[sector] = CapLine(LINE_SLOTS, sum(v for v, _ in head), sum(c for _, c in head))
        for asset, mirror in self.mirrors.items():
            steps: list[PriceStep] = []
            before: float | None = None
            for minute, close in mirror.closes():
                steps.append((minute, None, before, close))
                before = close
            self._move_lines(asset, steps)
        self._trim_lines()

    def _trim_lines(self) -> None:
        if self.now_ts >= 0:
            floor = self.points_floor()
            for line in self.lines.values():
                line.trim(floor)

    def rebuild(self, items: Iterable[tuple[str, bytes]]) -> None:
        """Replace the state by the table's (after recovery). Every series resumes in the interval
        it was in: assets at their own time, cap series at the restored watermark (never later, so
        no cap candle closes early; without a stored watermark, at ``now``, so none closes twice)."""
        self.mirrors.clear()
        self.with_old.clear()
        self.now_ts, self.floor, self.open_times, self._caps_tracked = -1, -1, {}, False
        self._day_opens += 1
        self.watermark.reset()
        self.cap_minute = -1
        self.held, self.table_deletes = [], []
        self._rebuild_lines()
        buckets = []
        for key, raw in items:
            rec = orjson.loads(raw)
            if key.startswith(SOURCE_KEY_PREFIX + "|"):
                self.watermark.restore(int(rec["src"]), int(rec["wm"]))
            else:
                buckets.append((split_key(key)[1], rec, raw))
        progress = self.watermark.progress
        until = min(progress.values()) if progress else None   # what every source had sent
        for _minute, rec, raw in sorted(buckets, key=lambda mr: mr[0]):
            event_ts = record_time(rec)
            if until is not None and event_ts > until:
                self.hold(event_ts, raw)
            else:
                self._put(rec["asset"], int(rec["minute"]), Bucket.from_json(rec["bucket"]), close=False)
        self._advance_floor()
        self.open_times = {}
        close_time = self.watermark.close_time()
        for series in (*self.mirrors, *self.universe.sectors()):
            series_now = self.series_now(series)
            if series not in self.mirrors and close_time is not None:
                series_now = min(series_now, close_time)
            if series_now >= 0:
                for interval in INTERVALS:
                    self.open_times[f"{series}:{interval}"] = open_time_of(series_now, interval)
        self._day_opens += 1
        self._trim_lines()
        self._mark_caps()

    def configure(self, lateness_ms: int, idle_s: float, sources: Iterable[int]) -> None:
        """Close policy of the cap series (settings) and the source partitions expected to report."""
        self.watermark.lateness_ms, self.watermark.idle_s = lateness_ms, idle_s
        self.watermark.expect(sources)

    # -- interval closes --------------------------------------------------------------------

    def _track_intervals(self, asset: str) -> None:
        """Remember the interval each touched series is in (the one its next close will end); the
        cap series once (they then move on in :meth:`_close_intervals`)."""
        caps = () if self._caps_tracked else self.sector_ids()
        self._caps_tracked = self.now_ts >= 0
        for series in (asset, *caps):
            series_now = self.series_now(series)
            if series_now < 0:
                continue
            for interval in INTERVALS:
                key = f"{series}:{interval}"
                if key not in self.open_times:
                    self.open_times[key] = open_time_of(series_now, interval)
                    self._day_opens += interval == "1d"

    def _close_intervals(self, asset: str | None, new_now: int) -> None:
        """Queue the closed candle of every interval a series leaves when its now becomes ``new_now``.

        Computed at once, before later input can evict its buckets (a fast replay crosses many
        intervals within one emission interval); ``asset`` None stands for the cap series.
        """
        series_list = [asset] if asset is not None else self.sector_ids()
        for series in series_list:
            for interval in INTERVALS:
                key = f"{series}:{interval}"
                previous = self.open_times.get(key)
                new_open = open_time_of(new_now, interval)
                if previous is None or previous >= new_open:
                    continue
                candle = self.candle(series, interval, previous, closed=True)
                if candle is not None:
                    self.closed.append(candle)
                self.open_times[key] = new_open
                self._day_opens += interval == "1d"

    def on_universe_change(self) -> None:
        self._rebuild_lines()
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

    # -- candles --------------------------------------------------------------------------

    def candle(self, series: str, interval: str, open_time: int, closed: bool) -> dict[str, Any] | None:
        end = open_time + INTERVAL_MS[interval]
        mirror = self.mirrors.get(series)
        if mirror is not None:
            ohlc = ring_ohlc(mirror.buckets, open_time, end)
            ts = mirror.now_ts if not closed else min(mirror.now_ts, end - 1)
        else:
            line = self.lines.get(series)
            if line is None or self.now_ts < 0:
                return None
            start = max(open_time, self.points_floor())
            ohlc = points_ohlc(line.points(start, min(end, minute_of(self.now_ts) + MINUTE_MS)))
            ts = self.now_ts if not closed else min(self.now_ts, end - 1)
        return None if ohlc is None else candle_value(series, interval, open_time, ohlc, closed, ts)

    def series_now(self, series: str) -> int:
        mirror = self.mirrors.get(series)
        return mirror.now_ts if mirror is not None else self.now_ts

    def due_candles(self, now: float, limit: int | None = None) -> list[dict[str, Any]]:
        """Candles to emit: the closed candles queued (in order, never conflated), then the forming
        candle of each series whose emission interval has passed; at most about ``limit`` of them
        (the rest on the next call), so a caller can yield between slices."""
        if limit is not None and len(self.closed) >= limit:
            out, self.closed = self.closed[:limit], self.closed[limit:]
            return out
        out, self.closed = self.closed, []
        keys = self.candles.ready(now, None if limit is None else limit - len(out))
        for key in keys:
            series, interval = key.rsplit(":", 1)
            series_now = self.series_now(series)
            if series_now < 0:
                continue
            forming = self.candle(series, interval, open_time_of(series_now, interval), closed=False)
            if forming is not None and self.candles.changed(key, forming, now):
                out.append(forming)
        return out

    def due_sectors(self, now: float, limit: int | None = None) -> list[dict[str, Any]]:
        """Sector values to emit (conflated, changed only); first applies what the sources' release
        time has reached meanwhile (a source turned quiet)."""
        self.release(now, RELEASE_SLICE)
        keys = self.sectors.ready(now, limit)
        values = self.sector_values(keys)
        return [v for s, v in values.items() if self.sectors.changed(s, v, now)]
