"""Per-asset minute-bucket ring of trade bars and the asset statistics of docs/semantics.md (pure).

``apply`` is O(1) per bar (the hot path); ``stats`` scans the ring and is called at most once per
emission interval per asset (conflated output).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import compress
from typing import Any

from services.common.events import TradeBar
from services.processor.timeutil import (
    DAY_MINUTES,
    MINUTE_MS,
    RING_MINUTES,
    minute_of,
    pct_change,
    ring_start,
    window_start,
)

APPLIED = "applied"
DUPLICATE = "duplicate"
LATE_DROPPED = "late_dropped"

OpenKey = tuple[int, str]            # (ts_first, bar id): the smallest opens the bucket
CloseKey = tuple[int, int, str]      # (ts_last, ts_recv, bar id): the largest closes it


@dataclass(slots=True)
class Bucket:
    """Trades of one asset in one minute, across venues."""

    open: float
    open_key: OpenKey
    high: float
    low: float
    close: float
    close_key: CloseKey
    notional: float
    trades: int
    ids: str | set[str] | None = None    # bar ids applied: one id as a str (most buckets), more as a set

    def has(self, bar_id: str) -> bool:
        ids = self.ids
        return ids is not None and (bar_id == ids if isinstance(ids, str) else bar_id in ids)

    def id_list(self) -> list[str]:
        ids = self.ids
        return [] if ids is None else [ids] if isinstance(ids, str) else sorted(ids)

    @classmethod
    def of_bar(cls, bar: TradeBar) -> Bucket:
        return cls(bar.open, (bar.ts_first, bar.id), bar.high, bar.low, bar.close,
                   (bar.ts_last, bar.ts_recv, bar.id), bar.notional_usd, bar.count, bar.id)

    def add(self, bar: TradeBar) -> None:
        open_key = (bar.ts_first, bar.id)
        if open_key < self.open_key:
            self.open, self.open_key = bar.open, open_key
        close_key = (bar.ts_last, bar.ts_recv, bar.id)
        if close_key > self.close_key:
            self.close, self.close_key = bar.close, close_key
        if bar.high > self.high:
            self.high = bar.high
        if bar.low < self.low:
            self.low = bar.low
        self.notional += bar.notional_usd
        self.trades += bar.count
        if self.ids is None:
            self.ids = bar.id
        elif isinstance(self.ids, str):
            self.ids = {self.ids, bar.id}
        else:
            self.ids.add(bar.id)

    def to_json(self, with_ids: bool = True) -> list[Any]:
        return [self.open, list(self.open_key), self.high, self.low, self.close, list(self.close_key),
                self.notional, self.trades, self.id_list() if with_ids else []]

    @classmethod
    def from_json(cls, data: list[Any]) -> Bucket:
        o, ok, h, lo, c, ck, n, k, ids = data
        return cls(o, (ok[0], ok[1]), h, lo, c, (ck[0], ck[1], ck[2]), n, k,
                   None if not ids else ids[0] if len(ids) == 1 else set(ids))


@dataclass(slots=True)
class WindowStats:
    """The rolling figures of one asset at a given event-time ``now`` (see semantics.md)."""

    price: float
    price_24h_ago: float | None
    open_24h: float | None
    high_24h: float | None
    low_24h: float | None
    volume_24h: float
    volume_prev_24h: float
    trades_24h: int


_COLUMNS = ("open", "high", "low", "close", "notional", "trades", "recv", "first", "last", "ido", "idn")
_ID_COLUMNS = ("ido", "idn")
_GROW_SLOTS = 32
_SPARSE_CAP = RING_MINUTES * 3 // 2   # a sparse ring doubles its slots up to this (a span and its slack)
BLOCK_MINUTES = 64      # minutes of a block of cached extremes
_BLOCK_MS = BLOCK_MINUTES * MINUTE_MS
_SPARSE_SLOTS = 48      # a range with at most this many buckets is read bucket by bucket


class BucketRing:
    """The minute buckets of one key as parallel typed arrays (a compact ``dict[minute, Bucket]``).

    Slot ``j`` holds minute ``base + j * MINUTE_MS``; slots below ``lo`` were evicted and are cut off
    in chunks, so appends, evictions and late buckets inside the ring are O(1) amortised. The held
    minutes never span more than the ring (RING_MINUTES): an older one is not stored. Bar ids live
    UTF-8 encoded in one byte arena per key (a bucket with a single bar, the usual case) or, for a
    bucket of several bars, as a set in ``multi``. A bucket stored without ids (a mirror's) keeps no
    key ids: its keys are compared only with other minutes', which never tie (a bar lies inside its
    minute). Reading a bucket builds a :class:`Bucket` copy; writing one stores its fields.
    """

    __slots__ = ("base", "lo", "live", "open", "high", "low", "close", "notional", "trades", "first", "last",
                 "recv", "ido", "idn", "arena", "dead", "multi", "count", "blocks")

    def __init__(self) -> None:
        self.count = 0
        self._reset(0)

    def _reset(self, base: int) -> None:
        self.base, self.lo = base, 0
        self.live = bytearray()
        self.open, self.high, self.low, self.close, self.notional = (array("d") for _ in range(5))
        self.trades, self.recv = array("q"), array("q")
        self.first, self.last = array("i"), array("i")   # ts_first / ts_last - minute (inside the minute)
        self.ido, self.idn = array("I"), array("I")      # the single bar id: offset and length in arena
        self.arena = bytearray()
        self.dead = 0
        self.multi: dict[int, tuple[str, str, set[str]]] = {}   # minute -> (open id, close id, ids)
        self.blocks: dict[int, tuple[float, float] | None] = {}  # block -> its extremes (see extremes)

    def _columns(self) -> tuple[array[Any], ...]:
        return tuple(getattr(self, name) for name in _COLUMNS)

    # -- mapping interface (what the stages use) ---------------------------------------------

    def index(self, minute: int) -> int:
        """Slot of ``minute`` if it holds a bucket, else -1."""
        j = (minute - self.base) // MINUTE_MS
        return j if self.lo <= j < len(self.live) and self.live[j] else -1

    def __contains__(self, minute: object) -> bool:
        return isinstance(minute, int) and self.index(minute) >= 0

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[int]:
        live, base = self.live, self.base
        return iter([base + j * MINUTE_MS for j in range(self.lo, len(live)) if live[j]])

    def get(self, minute: int) -> Bucket | None:
        j = self.index(minute)
        return None if j < 0 else self._bucket(j, minute)

    def __getitem__(self, minute: int) -> Bucket:
        j = self.index(minute)
        if j < 0:
            raise KeyError(minute)
        return self._bucket(j, minute)

    def items(self) -> Iterator[tuple[int, Bucket]]:
        for minute in list(self):
            yield minute, self._bucket(self.index(minute), minute)

    def __setitem__(self, minute: int, bucket: Bucket) -> None:
        j = self._slot(minute)
        if j < 0:
            return
        self._clear(j, minute)
        self.live[j] = 1
        self.count += 1
        self.open[j], self.high[j], self.low[j], self.close[j] = bucket.open, bucket.high, bucket.low, bucket.close
        self.notional[j], self.trades[j] = bucket.notional, bucket.trades
        self.first[j], self.last[j] = bucket.open_key[0] - minute, bucket.close_key[0] - minute
        self.recv[j] = bucket.close_key[1]
        ids = bucket.ids
        if isinstance(ids, str) and bucket.open_key[1] == ids == bucket.close_key[2]:
            self._store_id(j, ids)
        elif ids:
            self.multi[minute] = (bucket.open_key[1], bucket.close_key[2], {ids} if isinstance(ids, str) else set(ids))

    def __delitem__(self, minute: int) -> None:
        j = self.index(minute)
        if j < 0:
            raise KeyError(minute)
        self._clear(j, minute)

    # -- range queries (without a sorted list of minutes beside the ring) --------------------

    def clamp(self, minute: int) -> int:
        """The slot ``minute`` has or would have, limited to the held slots (for range bounds)."""
        return max(self.lo, min(len(self.live), (minute - self.base) // MINUTE_MS))

    def oldest(self) -> int | None:
        """The oldest minute held, or None."""
        j = self.live.find(1, self.lo)
        return None if j < 0 else self.base + j * MINUTE_MS

    def latest_at(self, minute: int) -> int | None:
        """The latest minute held at or before ``minute``, or None."""
        j = self.live.rfind(1, self.lo, self.clamp(minute + MINUTE_MS))
        return None if j < 0 else self.base + j * MINUTE_MS

    def close_at(self, minute: int) -> float | None:
        """Close of the latest bucket at or before ``minute`` (the last price then)."""
        j = self.live.rfind(1, self.lo, self.clamp(minute + MINUTE_MS))
        return None if j < 0 else self.close[j]

    def between(self, start: int, end: int) -> Iterator[tuple[int, Bucket]]:
        """(minute, bucket) of the minutes in [start, end), oldest first."""
        live, base = self.live, self.base
        for j in range(self.clamp(start), self.clamp(end)):
            if live[j]:
                yield base + j * MINUTE_MS, self._bucket(j, base + j * MINUTE_MS)

    def extremes(self, a: int, b: int) -> tuple[float, float] | None:
        """(highest high, lowest low) of the buckets in slots [a, b), or None without one. The whole
        blocks of ``BLOCK_MINUTES`` inside a long range are read from a cache that each write to a
        block drops (max and min do not depend on the order, so the figures stay exact)."""
        block_ms = BLOCK_MINUTES * MINUTE_MS
        base = self.base
        k0, k1 = -((a * MINUTE_MS + base) // -block_ms), (b * MINUTE_MS + base) // block_ms
        if k1 - k0 < 2:
            return self._extremes(a, b)
        s0, s1 = (k0 * block_ms - base) // MINUTE_MS, (k1 * block_ms - base) // MINUTE_MS
        parts = [self._extremes(a, s0), self._extremes(s1, b)]
        blocks, n = self.blocks, len(self.live)
        for k in range(k0, k1):
            if k in blocks:
                parts.append(blocks[k])
            else:
                start = (k * block_ms - base) // MINUTE_MS
                part = blocks[k] = self._extremes(max(start, 0), min(start + BLOCK_MINUTES, n))
                parts.append(part)
        held = [p for p in parts if p is not None]
        if not held:
            return None
        return max(p[0] for p in held), min(p[1] for p in held)

    def _extremes(self, a: int, b: int) -> tuple[float, float] | None:
        """:meth:`extremes` by a scan: a sparse range visits its buckets only (found in C), a dense
        one compresses the columns."""
        live = self.live
        if live.count(1, a, b) > _SPARSE_SLOTS:
            held = live[a:b]
            return max(compress(self.high[a:b], held)), min(compress(self.low[a:b], held))
        j = live.find(1, a, b)
        if j < 0:
            return None
        highs, lows = self.high, self.low
        high, low = highs[j], lows[j]
        j = live.find(1, j + 1, b)
        while j >= 0:
            if highs[j] > high:
                high = highs[j]
            if lows[j] < low:
                low = lows[j]
            j = live.find(1, j + 1, b)
        return high, low

    def totals(self, a: int, b: int) -> tuple[float, int]:
        """(notional, trades) of the slots in [a, b), each summed oldest first as ``sum`` does over
        the columns (empty slots hold zeros, so visiting the buckets only gives the same floats)."""
        live = self.live
        if live.count(1, a, b) > _SPARSE_SLOTS:
            return sum(self.notional[a:b]), sum(self.trades[a:b])
        notional, trades = self.notional, self.trades
        vol: float = 0
        count = 0
        j = live.find(1, a, b) if a < b else -1
        while j >= 0:
            vol += notional[j]
            count += trades[j]
            j = live.find(1, j + 1, b)
        return vol, count

    # -- bars ---------------------------------------------------------------------------------

    def has_id(self, minute: int, bar_id: str) -> bool:
        j = self.index(minute)
        return j >= 0 and self.has_id_at(j, minute, bar_id)

    def has_id_at(self, j: int, minute: int, bar_id: str) -> bool:
        multi = self.multi.get(minute)
        if multi is not None:
            return bar_id in multi[2]
        n = self.idn[j] if self.idn else 0
        return n > 0 and self.arena[self.ido[j]:self.ido[j] + n] == bar_id.encode()

    def add_bar(self, bar: TradeBar) -> None:
        """Apply a bar (not a duplicate) to its bucket."""
        minute = bar.minute
        j = self.index(minute)
        if j < 0:
            j = self._slot(minute)
            if j < 0:                       # older than the ring
                return
            self.live[j] = 1
            self.count += 1
            self.blocks.pop(minute // _BLOCK_MS, None)
            self.open[j], self.high[j], self.low[j], self.close[j] = bar.open, bar.high, bar.low, bar.close
            self.notional[j], self.trades[j] = bar.notional_usd, bar.count
            self.first[j], self.last[j], self.recv[j] = bar.ts_first - minute, bar.ts_last - minute, bar.ts_recv
            self._store_id(j, bar.id)
            return
        multi = self.multi.get(minute)
        if multi is None:
            open_id = close_id = self._ids(j, minute)[0]
            ids = {open_id, bar.id} if open_id else {bar.id}
            self._drop_id(j)
        else:
            open_id, close_id, ids = multi
            ids.add(bar.id)
        first, last = bar.ts_first - minute, bar.ts_last - minute
        if first < self.first[j] or (first == self.first[j] and bar.id < open_id):
            self.open[j], self.first[j], open_id = bar.open, first, bar.id
        if (last, bar.ts_recv, bar.id) > (self.last[j], self.recv[j], close_id):
            self.close[j], self.last[j], self.recv[j], close_id = bar.close, last, bar.ts_recv, bar.id
        if bar.high > self.high[j]:
            self.high[j] = bar.high
            self.blocks.pop(minute // _BLOCK_MS, None)
        if bar.low < self.low[j]:
            self.low[j] = bar.low
            self.blocks.pop(minute // _BLOCK_MS, None)
        self.notional[j] += bar.notional_usd
        self.trades[j] += bar.count
        self.multi[minute] = (open_id, close_id, ids)

    def evict_before(self, start: int) -> list[int]:
        """Remove the buckets of minutes before ``start``; returns their minutes, oldest first."""
        stop = min(len(self.live), (start - self.base) // MINUTE_MS)
        gone = []
        j = self.live.find(1, self.lo, stop) if stop > self.lo else -1
        while j >= 0:                       # the held slots only (a sparse ring skips its gaps in C)
            minute = self.base + j * MINUTE_MS
            self._clear(j, minute)
            gone.append(minute)
            j = self.live.find(1, j + 1, stop)
        if stop > self.lo:
            self.lo = stop
            if self.count == 0:
                self._reset(self.base)
        return gone

    def json_at(self, minute: int) -> list[Any] | None:
        """``Bucket.to_json()`` of the bucket of ``minute`` read straight from the columns, or None."""
        j = self.index(minute)
        if j < 0:
            return None
        open_id, close_id, ids = self._ids(j, minute)
        return [self.open[j], [minute + self.first[j], open_id], self.high[j], self.low[j], self.close[j],
                [minute + self.last[j], self.recv[j], close_id], self.notional[j], self.trades[j],
                [] if ids is None else [ids] if isinstance(ids, str) else sorted(ids)]

    # -- internals ----------------------------------------------------------------------------

    def _bucket(self, j: int, minute: int) -> Bucket:
        open_id, close_id, ids = self._ids(j, minute)
        return Bucket(self.open[j], (minute + self.first[j], open_id), self.high[j], self.low[j], self.close[j],
                      (minute + self.last[j], self.recv[j], close_id), self.notional[j], self.trades[j],
                      ids if isinstance(ids, str) or ids is None else set(ids))

    def _ids(self, j: int, minute: int) -> tuple[str, str, str | set[str] | None]:
        multi = self.multi.get(minute)
        if multi is not None:
            return multi
        n = self.idn[j] if self.idn else 0
        if not n:
            return "", "", None
        one = self.arena[self.ido[j]:self.ido[j] + n].decode()
        return one, one, one

    def _store_id(self, j: int, bar_id: str) -> None:
        data = bar_id.encode()
        if not self.idn:
            self.ido, self.idn = (array("I", bytes(4 * len(self.live))) for _ in range(2))
        self.ido[j], self.idn[j] = len(self.arena), len(data)
        self.arena += data

    def _drop_id(self, j: int) -> None:
        if not self.idn:
            return
        self.dead += self.idn[j]
        self.idn[j] = 0
        if self.dead > 4096 and 2 * self.dead > len(self.arena):
            arena = bytearray()
            for k in range(self.lo, len(self.live)):
                n = self.idn[k]
                if n:
                    o = self.ido[k]
                    self.ido[k] = len(arena)
                    arena += self.arena[o:o + n]
            self.arena, self.dead = arena, 0

    def _clear(self, j: int, minute: int) -> None:
        """Empty slot ``j`` (zero sums, so range sums may run over empty slots)."""
        if self.live[j]:
            self.live[j] = 0
            self.count -= 1
            self.notional[j] = 0.0
            self.trades[j] = 0
        self.blocks.pop(minute // _BLOCK_MS, None)
        self.multi.pop(minute, None)
        self._drop_id(j)

    def _newest(self) -> int:
        j = self.live.rfind(1, self.lo)
        return j if j >= 0 else self.lo - 1

    def _slot(self, minute: int) -> int:
        """The slot for ``minute`` (made as needed), or -1 if it is older than the ring."""
        if self.count == 0:
            self._reset(minute)
        j = (minute - self.base) // MINUTE_MS
        if j < len(self.live) - RING_MINUTES and j <= self._newest() - RING_MINUTES:
            return -1
        if j - RING_MINUTES >= self.lo:            # keep at most one ring of minutes
            self.evict_before(self.base + (j - RING_MINUTES + 1) * MINUTE_MS)
            if self.count == 0:
                self._reset(minute)
            j = (minute - self.base) // MINUTE_MS
        if j >= len(self.live):
            j -= self._room(j)
        elif j < 0:
            self._prepend(_GROW_SLOTS - j)
            j = _GROW_SLOTS
        if j < self.lo:
            self.lo = j
        return j

    def _room(self, j: int) -> int:
        """Make slot ``j`` (past the end) exist: the held slots move to the front, in place when the
        free tail that leaves is at least half the slack, else into columns reallocated with the slack;
        returns the number of slots moved by. The slack is an eighth of the span for a dense ring and
        half of it for a sparse one, so the bytes moved per bar stay a small multiple of its gap
        (one memmove per column, no per-slot work)."""
        live, n = self.live, len(self.live)
        first = live.find(1, self.lo) if self.count else -1
        if first < 0:
            first = j
        keep = live.rfind(1, first) + 1 - first if self.count else 0
        need = j - first + 1
        dense = 2 * self.count >= need
        slack = max(_GROW_SLOTS, need // 8 if dense else need // 2)
        if need + slack // 2 <= n:             # at least half the slack free: no reallocation
            buffers: tuple[array[Any] | bytearray, ...] = (*self._columns(), live)
            for col in buffers:
                if col:
                    with memoryview(col) as view:
                        view[:keep] = view[first:first + keep]
            for num in (self.notional, self.trades, self.idn):    # what an empty slot must read as
                if num:
                    num[keep:] = array(num.typecode, bytes((n - keep) * num.itemsize))
            live[keep:] = bytearray(n - keep)
        else:
            cap = need + slack if dense else max(need + slack, min(2 * n, _SPARSE_CAP))   # sparse: doubles
            for name in _COLUMNS:
                col = getattr(self, name)
                if not col and name in _ID_COLUMNS:
                    continue                    # no bar id stored yet (a mirror's ring never has one)
                new = col[first:first + keep]
                new.frombytes(bytes((cap - keep) * col.itemsize))
                setattr(self, name, new)
            self.live = live[first:first + keep] + bytearray(cap - keep)
        self.base += first * MINUTE_MS
        self.lo = 0
        return first

    def _prepend(self, k: int) -> None:
        """Add ``k`` empty slots before the first (a bar older than the ring's first minute)."""
        for name in _COLUMNS:
            col = getattr(self, name)
            if not col and name in _ID_COLUMNS:
                continue
            setattr(self, name, array(col.typecode, bytes(k * col.itemsize)) + col)
        self.live = bytearray(k) + self.live
        self.base -= k * MINUTE_MS
        self.lo += k


class AssetBook:
    """The 48 h ring of minute buckets of one asset; ``now_ts`` is the largest trade ts seen."""

    __slots__ = ("asset", "buckets", "now_ts")

    def __init__(self, asset: str) -> None:
        self.asset = asset
        self.buckets = BucketRing()
        self.now_ts = -1

    def apply(self, bar: TradeBar) -> tuple[str, list[int]]:
        """Add a bar; returns the outcome and the bucket minutes evicted by the advance of ``now``."""
        minute = bar.minute
        if self.now_ts >= 0 and minute < ring_start(minute_of(self.now_ts)):
            return LATE_DROPPED, []
        j = self.buckets.index(minute)
        if j >= 0 and self.buckets.has_id_at(j, minute, bar.id):
            return DUPLICATE, []
        evicted = self._advance(bar.ts_last, minute) if bar.ts_last > self.now_ts else []
        self.buckets.add_bar(bar)
        return APPLIED, evicted

    def set_bucket(self, minute: int, bucket: Bucket) -> list[int]:
        """Replace a bucket with an absolute value (mirrors of this book downstream); idempotent."""
        if self.now_ts >= 0 and minute < ring_start(minute_of(self.now_ts)):
            return []
        evicted = self._advance(bucket.close_key[0], minute)
        self.buckets[minute] = bucket
        return evicted

    def _advance(self, ts: int, minute: int) -> list[int]:
        """Move ``now`` to ``ts`` if later; returns the minutes that left the ring."""
        if ts <= self.now_ts:
            return []
        old_start = ring_start(minute_of(self.now_ts)) if self.now_ts >= 0 else minute
        self.now_ts = ts
        if ring_start(minute_of(ts)) <= old_start:
            return []
        return self.buckets.evict_before(ring_start(minute_of(ts)))

    def stats(self, now_ts: int | None = None) -> WindowStats | None:
        """Rolling figures at ``now_ts`` (default: this asset's own now); None without a trade."""
        now = self.now_ts if now_ts is None else now_ts
        ring = self.buckets
        if now < 0 or not ring.count:
            return None
        live, clamp = ring.live, ring.clamp
        now_minute = minute_of(now)
        ws = window_start(now_minute, DAY_MINUTES)
        j_prev, j_ws, j_end = clamp(ws - DAY_MINUTES * MINUTE_MS), clamp(ws), clamp(now_minute + MINUTE_MS)
        latest = live.rfind(1, ring.lo, j_end)      # buckets of later minutes have later keys
        if latest < 0:
            return None
        before = live.rfind(1, ring.lo, j_ws)
        first = live.find(1, j_ws, j_end)
        extremes = ring.extremes(first, j_end) if first >= 0 else None
        high, low = extremes if extremes is not None else (None, None)
        vol, trades = ring.totals(j_ws, j_end)
        vprev, _ = ring.totals(j_prev, j_ws)
        open_24h = ring.open[first] if first >= 0 else None
        ago = ring.close[before] if before >= 0 else open_24h
        return WindowStats(ring.close[latest], ago, open_24h, high, low, vol, vprev, trades)


def stats_value(asset: str, stats: WindowStats, now_ts: int, supply: float | None,
                sectors: list[str]) -> dict[str, Any]:
    """The ``asset-stats`` value (without ``ts_emit``) from the rolling figures."""
    return {
        "asset": asset,
        "price": stats.price,
        "price_24h_ago": stats.price_24h_ago,
        "open_24h": stats.open_24h,
        "high_24h": stats.high_24h,
        "low_24h": stats.low_24h,
        "change_24h_pct": pct_change(stats.price, stats.price_24h_ago),
        "volume_24h_usd": stats.volume_24h,
        "volume_prev_24h_usd": stats.volume_prev_24h,
        "volume_change_24h_pct": pct_change(stats.volume_24h, stats.volume_prev_24h),
        "trades_24h": stats.trades_24h,
        "circulating_supply": supply,
        "market_cap_usd": None if supply is None else stats.price * supply,
        "sectors": sectors,
        "ts": now_ts,
    }
