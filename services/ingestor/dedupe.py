"""Duplicate suppression for events by id, bounded in size and in receipt time.

One :class:`Deduper` lives for the whole process (not per connection), so the overlap of a
rotated connection and the replays after a reconnect are recognised: a key seen within the last
``window_ms`` of receipt time (and among the last ``capacity`` keys) is a duplicate.
Expiry order is kept in a deque: deleting the oldest entries of a dict instead would make
finding the next oldest slower and slower (CPython skips the deleted slots one by one).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable


class Deduper:
    def __init__(self, capacity: int = 500_000, window_ms: int = 15 * 60 * 1000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self.window_ms = window_ms
        self._seen: set[Hashable] = set()
        self._order: deque[tuple[int, Hashable]] = deque()   # (ts_recv, key), oldest first

    def __len__(self) -> int:
        return len(self._seen)

    def is_duplicate(self, key: Hashable, ts_recv: int) -> bool:
        """True if ``key`` was seen in the window; otherwise remember it and return False."""
        seen = self._seen
        if key in seen:
            return True
        seen.add(key)
        order = self._order
        order.append((ts_recv, key))
        if len(order) > self.capacity:
            seen.discard(order.popleft()[1])
        horizon = ts_recv - self.window_ms
        while order[0][0] < horizon:
            seen.discard(order.popleft()[1])
        return False
