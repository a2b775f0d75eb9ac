"""Candles (pure): asset candles from minute buckets, cap candles from per-minute closing values."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import compress
from typing import Any

from services.processor.assetbook import BucketRing

INTERVAL_MS: dict[str, int] = {"1m": 60_000, "1h": 3_600_000, "1d": 86_400_000}


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
    lo, hi = ring.clamp(start), ring.clamp(end)
    live = ring.live[lo:hi]
    first = live.find(1)
    if first < 0:
        return None
    last = live.rfind(1)
    return (ring.open[lo + first], max(compress(ring.high[lo:hi], live)), min(compress(ring.low[lo:hi], live)),
            ring.close[lo + last])


def points_ohlc(points: Iterable[float]) -> tuple[float, float, float, float] | None:
    """OHLC of a time-ordered sequence of closing values."""
    values = list(points)
    if not values:
        return None
    return (values[0], max(values), min(values), values[-1])
