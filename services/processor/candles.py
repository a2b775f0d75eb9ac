"""Candles (pure): asset candles from minute buckets, cap candles from per-minute closing values."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from services.processor.assetbook import Bucket

INTERVAL_MS: dict[str, int] = {"1m": 60_000, "1h": 3_600_000, "1d": 86_400_000}


def open_time_of(ts: int, interval: str) -> int:
    return ts // INTERVAL_MS[interval] * INTERVAL_MS[interval]


def candle_value(series: str, interval: str, open_time: int, ohlc: tuple[float, float, float, float],
                 closed: bool, ts: int) -> dict[str, Any]:
    o, h, lo, c = ohlc
    return {"series": series, "interval": interval, "open_time": open_time, "open": o, "high": h, "low": lo,
            "close": c, "closed": closed, "ts": ts}


def bucket_ohlc(buckets: Iterable[tuple[int, Bucket]]) -> tuple[float, float, float, float] | None:
    """Trade OHLC of the given (minute, bucket) pairs (open of the earliest, close of the latest)."""
    first: tuple[int, Bucket] | None = None
    last: Bucket | None = None
    high = low = 0.0
    for minute, b in buckets:
        if first is None:
            high, low = b.high, b.low
        if first is None or minute < first[0]:
            first = (minute, b)
        if last is None or b.close_key > last.close_key:
            last = b
        high, low = max(high, b.high), min(low, b.low)
    if first is None or last is None:
        return None
    return (first[1].open, high, low, last.close)


def points_ohlc(points: Iterable[float]) -> tuple[float, float, float, float] | None:
    """OHLC of a time-ordered sequence of closing values."""
    values = list(points)
    if not values:
        return None
    return (values[0], max(values), min(values), values[-1])
