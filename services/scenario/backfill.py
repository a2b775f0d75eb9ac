"""Closed candles of the 120 days before the live week (``candle-history`` records; pure).

Series ``total``: daily candles for 2024-09-22 .. 2025-01-19 whose closes are the solved history
(:mod:`services.scenario.history`), and hourly candles for the last ten of those days whose last
hour closes at the day's close. Values follow ``schemas/candle.schema.json``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from typing import Any

from services.common.clock import DAY_MS, HOUR_MS
from services.scenario.history import HISTORY_CEILING, HISTORY_DAYS, solve_total_closes
from services.scenario.paths import START_MS

HOURLY_DAYS = 10
SERIES = "total"


def _candle(interval: str, open_time: int, length_ms: int, o: float, h: float, low: float, c: float) -> dict[str, Any]:
    end = open_time + length_ms - 1
    return {"series": SERIES, "interval": interval, "open_time": open_time, "open": o, "high": h, "low": low,
            "close": c, "closed": True, "ts": end, "ts_emit": end}


def _hourly(rng: random.Random, day_open_ms: int, o: float, c: float) -> list[dict[str, Any]]:
    """24 hourly candles from ``o`` to ``c`` (a seeded bridge between them)."""
    walk, steps = 0.0, []
    for _ in range(24):
        walk += rng.gauss(0.0, 0.004)
        steps.append(walk)
    closes = [min(o * math.exp(math.log(c / o) * (i + 1) / 24 + steps[i] - walk * (i + 1) / 24),
                  HISTORY_CEILING * 0.998) for i in range(23)] + [c]
    out, prev = [], o
    for i, close in enumerate(closes):
        high = min(max(prev, close) * (1 + abs(rng.gauss(0.0, 0.0015))), HISTORY_CEILING)
        low = min(prev, close) * (1 - abs(rng.gauss(0.0, 0.0015)))
        out.append(_candle("1h", day_open_ms + i * HOUR_MS, HOUR_MS, prev, high, low, close))
        prev = close
    return out


def history_candles() -> Iterator[dict[str, Any]]:
    """Daily candles (oldest first), each preceded by its hourly candles in the last ten days."""
    closes = solve_total_closes().history
    rng = random.Random("backfill")
    first_ms = START_MS - HISTORY_DAYS * DAY_MS
    prev = closes[0] * 0.995
    for day, close in enumerate(closes):
        open_ms = first_ms + day * DAY_MS
        if day >= HISTORY_DAYS - HOURLY_DAYS:
            hours = _hourly(rng, open_ms, prev, close)
            yield from hours
            high = max(h["high"] for h in hours)
            low = min(h["low"] for h in hours)
        else:
            high = min(max(prev, close) * (1 + abs(rng.gauss(0.0, 0.008))), HISTORY_CEILING)
            low = min(prev, close) * (1 - abs(rng.gauss(0.0, 0.008)))
        yield _candle("1d", open_ms, DAY_MS, prev, high, low, close)
        prev = close
