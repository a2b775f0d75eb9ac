"""Event-time minute buckets and the windows of docs/semantics.md (pure)."""

from __future__ import annotations

from services.common.clock import DAY_MINUTES, MINUTE_MS
from services.common.events import USD_QUOTES

__all__ = ["DAY_MINUTES", "LIQUIDATION_WINDOWS", "MINUTE_MS", "RING_MINUTES", "USD_QUOTES", "minute_of",
           "pct_change", "ring_start", "window_start"]

RING_MINUTES = 2_880          # 48 h of minute buckets per key

LIQUIDATION_WINDOWS: dict[str, int] = {"1h": 60, "4h": 240, "12h": 720, "24h": 1_440}


def minute_of(ts: int) -> int:
    """Start (epoch ms) of the minute bucket holding ``ts``."""
    return ts // MINUTE_MS * MINUTE_MS


def window_start(now_minute: int, minutes: int) -> int:
    """First bucket of the ``minutes``-long window ending with bucket ``now_minute``."""
    return now_minute - (minutes - 1) * MINUTE_MS


def ring_start(now_minute: int) -> int:
    """Oldest bucket still held by a ring whose newest bucket is ``now_minute``."""
    return window_start(now_minute, RING_MINUTES)


def pct_change(new: float | None, old: float | None) -> float | None:
    """(new / old - 1) x 100, or None when either is missing or old is 0."""
    if new is None or old is None or old == 0:
        return None
    return (new / old - 1.0) * 100.0
