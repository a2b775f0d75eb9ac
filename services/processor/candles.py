"""Candles (pure): asset candles from minute buckets, cap candles from per-minute closing values."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from services.processor.assetbook import BucketRing
from services.processor.timeutil import MINUTE_MS

INTERVAL_MS: dict[str, int] = {"1m": MINUTE_MS, "1h": 60 * MINUTE_MS, "1d": 1_440 * MINUTE_MS}


def open_time_of(ts: int, interval: str) -> int:
    return ts // INTERVAL_MS[interval] * INTERVAL_MS[interval]


def candle_value(series: str, interval: str, open_time: int, ohlc: tuple[float, float, float, float],
                 closed: bool, ts: int) -> dict[str, Any]:
    o, h, lo, c = ohlc
    return {"series": series, "interval": interval, "open_time": open_time, "open": o, "high": h, "low": lo,
            "close": c, "closed": closed, "ts": ts}


def ring_ohlc(ring: BucketRing, start: int, end: int) -> tuple[float, float, float, float] | None:
    """Trade OHLC of a ring's buckets in ``[start, end)``, read from its columns (no bucket built):
    the open of the earliest minute, the close of the latest (a bar lies inside its minute)."""
    if end - start == MINUTE_MS:     # a 1-minute candle (most closes): its one bucket, read directly
        j = ring.index(start)
        return None if j < 0 else (ring.open[j], ring.high[j], ring.low[j], ring.close[j])
    lo, hi = ring.clamp(start), ring.clamp(end)
    first = ring.live.find(1, lo, hi)
    if first < 0:
        return None
    last = ring.live.rfind(1, first, hi)
    extremes = ring.extremes(first, last + 1)
    assert extremes is not None
    return ring.open[first], extremes[0], extremes[1], ring.close[last]


def points_ohlc(points: Iterable[float]) -> tuple[float, float, float, float] | None:
    """OHLC of a time-ordered sequence of closing values."""
    values = list(points)
    if not values:
        return None
    return (values[0], max(values), min(values), values[-1])
