"""Duplicate suppression for events by id, bounded in size and in receipt time.

One :class:`Deduper` lives for the whole process (not per connection), so the overlap of a
rotated connection and the replays after a reconnect are recognised: a key seen within the last
``window_ms`` of receipt time (and among the last ``capacity`` keys) is a duplicate.
"""

from __future__ import annotations

from collections.abc import Hashable


class Deduper:
    def __init__(self, capacity: int = 500_000, window_ms: int = 15 * 60 * 1000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self.window_ms = window_ms
        self._seen: dict[Hashable, int] = {}   # insertion-ordered: oldest first

    def __len__(self) -> int:
        return len(self._seen)

    def is_duplicate(self, key: Hashable, ts_recv: int) -> bool:
        """True if ``key`` was seen in the window; otherwise remember it and return False."""
        seen = self._seen
        if key in seen:
            return True
        seen[key] = ts_recv
        if len(seen) > self.capacity:
            del seen[next(iter(seen))]
        self._expire(ts_recv)
        return False

    def _expire(self, now_ms: int) -> None:
        horizon = now_ms - self.window_ms
        seen = self._seen
        while seen:
            oldest = next(iter(seen))
            if seen[oldest] >= horizon:
                return
            del seen[oldest]
