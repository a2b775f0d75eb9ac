"""Time units in epoch milliseconds and the wall clock, defined once for every service.

Everything the pipeline computes runs on event time (``ts``); :func:`now_ms` is only for receipt
and emit stamps and for the bounds that reject events from the future.
"""

from __future__ import annotations

import time

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
DAY_MINUTES = 1_440


def now_ms() -> int:
    """The wall clock in epoch milliseconds."""
    return time.time_ns() // 1_000_000
