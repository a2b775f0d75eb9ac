"""Rolling liquidation totals: 1h/4h/12h/24h windows x scopes all / asset:X / exchange:Y (pure).

Each minute bucket keeps, per scope, the long/short sums and counts and its largest liquidation,
updated in O(scopes) per liquidation; a window total sums the buckets of the window (done once per
emission, not per event). The ring is 24 h (the longest window); older liquidations are dropped-late.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.common.events import Liquidation
from services.processor.assetbook import APPLIED, DUPLICATE, LATE_DROPPED
from services.processor.timeutil import DAY_MINUTES, LIQUIDATION_WINDOWS, minute_of, window_start

LargestKey = tuple[float, int, str, str]   # (notional, ts, exchange, id): the max is the largest


def liquidation_id(liq: Liquidation) -> str:
    return f"{liq.exchange}|{liq.id}"


def scopes_of(liq: Liquidation) -> tuple[str, str, str]:
    return ("all", f"asset:{liq.base.upper()}", f"exchange:{liq.exchange}")


def largest_value(liq: Liquidation) -> dict[str, Any]:
    return {"notional_usd": liq.notional_usd, "liquidated_side": liq.liquidated_side,
            "exchange": liq.exchange, "instrument": liq.instrument, "price": liq.price, "ts": liq.ts}


def largest_key(liq: Liquidation) -> LargestKey:
    return (liq.notional_usd, liq.ts, liq.exchange, liq.id)


@dataclass(slots=True)
class Agg:
    long_usd: float = 0.0
    short_usd: float = 0.0
    long_count: int = 0
    short_count: int = 0
    largest_key: LargestKey | None = None
    largest: dict[str, Any] | None = None

    def add(self, liq: Liquidation) -> None:
        if liq.liquidated_side == "long":
            self.long_usd += liq.notional_usd
            self.long_count += 1
        else:
            self.short_usd += liq.notional_usd
            self.short_count += 1
        key = largest_key(liq)
        if self.largest_key is None or key > self.largest_key:
            self.largest_key, self.largest = key, largest_value(liq)

    def merge(self, other: Agg) -> None:
        self.long_usd += other.long_usd
        self.short_usd += other.short_usd
        self.long_count += other.long_count
        self.short_count += other.short_count
        if other.largest_key is not None and (self.largest_key is None or other.largest_key > self.largest_key):
            self.largest_key, self.largest = other.largest_key, other.largest


@dataclass(slots=True)
class LiqBucket:
    ids: set[str] = field(default_factory=set)
    scopes: dict[str, Agg] = field(default_factory=dict)


def totals_value(window: str, scope: str, agg: Agg, now_ts: int) -> dict[str, Any]:
    """The ``liquidation-totals`` value (without ``ts_emit``)."""
    return {"window": window, "scope": scope, "long_usd": agg.long_usd, "short_usd": agg.short_usd,
            "total_usd": agg.long_usd + agg.short_usd, "long_count": agg.long_count,
            "short_count": agg.short_count, "count": agg.long_count + agg.short_count,
            "largest": agg.largest, "ts": now_ts}


class LiqBook:
    """Every liquidation of the last 24 h of event time, bucketed by minute."""

    def __init__(self) -> None:
        self.buckets: dict[int, LiqBucket] = {}
        self.now_ts = -1

    def apply(self, liq: Liquidation) -> tuple[str, list[str]]:
        """Add a liquidation; returns the outcome and the ids evicted by the advance of ``now``."""
        minute = minute_of(liq.ts)
        if self.now_ts >= 0 and minute < window_start(minute_of(self.now_ts), DAY_MINUTES):
            return LATE_DROPPED, []
        key = liquidation_id(liq)
        bucket = self.buckets.get(minute)
        if bucket is None:
            bucket = self.buckets[minute] = LiqBucket()
        elif key in bucket.ids:
            return DUPLICATE, []
        bucket.ids.add(key)
        for scope in scopes_of(liq):
            agg = bucket.scopes.get(scope)
            if agg is None:
                agg = bucket.scopes[scope] = Agg()
            agg.add(liq)
        evicted: list[str] = []
        if liq.ts > self.now_ts:
            old_start = window_start(minute_of(self.now_ts), DAY_MINUTES) if self.now_ts >= 0 else minute
            self.now_ts = liq.ts
            start = window_start(minute_of(self.now_ts), DAY_MINUTES)
            if start > old_start:       # scanned only when the window's first minute moves
                for m in [m for m in self.buckets if m < start]:
                    evicted.extend(self.buckets.pop(m).ids)
        return APPLIED, evicted

    def totals(self) -> dict[str, dict[str, Any]]:
        """``window:scope`` -> totals value for every scope with a liquidation in the last 24 h."""
        if self.now_ts < 0:
            return {}
        now_minute = minute_of(self.now_ts)
        starts = {w: window_start(now_minute, n) for w, n in LIQUIDATION_WINDOWS.items()}
        sums: dict[str, dict[str, Agg]] = {w: {} for w in LIQUIDATION_WINDOWS}
        for minute in sorted(self.buckets):
            bucket = self.buckets[minute]
            for w, start in starts.items():
                if minute < start:
                    continue
                per_scope = sums[w]
                for scope, agg in bucket.scopes.items():
                    total = per_scope.get(scope)
                    if total is None:
                        total = per_scope[scope] = Agg()
                    total.merge(agg)
        scopes = set(sums["24h"])
        out: dict[str, dict[str, Any]] = {}
        for w in LIQUIDATION_WINDOWS:
            for scope in scopes:
                out[f"{w}:{scope}"] = totals_value(w, scope, sums[w].get(scope, Agg()), self.now_ts)
        return out
