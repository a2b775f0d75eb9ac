"""Per-asset minute-bucket ring of trade bars and the asset statistics of docs/semantics.md (pure).

``apply`` is O(1) per bar (the hot path); ``stats`` scans the ring and is called at most once per
emission interval per asset (conflated output).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.common.events import TradeBar
from services.processor.timeutil import (
    DAY_MINUTES,
    MINUTE_MS,
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


class AssetBook:
    """The 48 h ring of minute buckets of one asset; ``now_ts`` is the largest trade ts seen."""

    __slots__ = ("asset", "buckets", "now_ts")

    def __init__(self, asset: str) -> None:
        self.asset = asset
        self.buckets: dict[int, Bucket] = {}
        self.now_ts = -1

    def apply(self, bar: TradeBar) -> tuple[str, list[int]]:
        """Add a bar; returns the outcome and the bucket minutes evicted by the advance of ``now``."""
        minute = bar.minute
        if self.now_ts >= 0 and minute < ring_start(minute_of(self.now_ts)):
            return LATE_DROPPED, []
        bucket = self.buckets.get(minute)
        if bucket is None:
            self.buckets[minute] = Bucket.of_bar(bar)
        elif bucket.has(bar.id):
            return DUPLICATE, []
        else:
            bucket.add(bar)
        evicted: list[int] = []
        if bar.ts_last > self.now_ts:
            old_start = ring_start(minute_of(self.now_ts)) if self.now_ts >= 0 else minute
            self.now_ts = bar.ts_last
            evicted = self._evict(old_start)
        return APPLIED, evicted

    def set_bucket(self, minute: int, bucket: Bucket) -> list[int]:
        """Replace a bucket with an absolute value (mirrors of this book downstream); idempotent."""
        if self.now_ts >= 0 and minute < ring_start(minute_of(self.now_ts)):
            return []
        self.buckets[minute] = bucket
        if bucket.close_key[0] > self.now_ts:
            old_start = ring_start(minute_of(self.now_ts)) if self.now_ts >= 0 else minute
            self.now_ts = bucket.close_key[0]
            return self._evict(old_start)
        return []

    def _evict(self, old_start: int) -> list[int]:
        start = ring_start(minute_of(self.now_ts))
        if start <= old_start:
            return []
        if start - old_start < len(self.buckets) * MINUTE_MS:
            gone = [m for m in range(old_start, start, MINUTE_MS) if m in self.buckets]
        else:
            gone = [m for m in self.buckets if m < start]
        for m in gone:
            del self.buckets[m]
        return gone

    def stats(self, now_ts: int | None = None) -> WindowStats | None:
        """Rolling figures at ``now_ts`` (default: this asset's own now); None without a trade."""
        now = self.now_ts if now_ts is None else now_ts
        if now < 0:
            return None
        now_minute = minute_of(now)
        ws = window_start(now_minute, DAY_MINUTES)
        ps = ws - DAY_MINUTES * MINUTE_MS
        latest: Bucket | None = None
        before: tuple[int, Bucket] | None = None
        first: tuple[int, Bucket] | None = None
        high = low = None
        vol = vprev = 0.0
        trades = 0
        for minute, b in self.buckets.items():
            if minute > now_minute:
                continue
            if latest is None or b.close_key > latest.close_key:
                latest = b
            if minute >= ws:
                vol += b.notional
                trades += b.trades
                high = b.high if high is None or b.high > high else high
                low = b.low if low is None or b.low < low else low
                if first is None or minute < first[0]:
                    first = (minute, b)
            else:
                if minute >= ps:
                    vprev += b.notional
                if before is None or minute > before[0]:
                    before = (minute, b)
        if latest is None:
            return None
        open_24h = first[1].open if first else None
        ago = before[1].close if before else open_24h
        return WindowStats(latest.close, ago, open_24h, high, low, vol, vprev, trades)


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
