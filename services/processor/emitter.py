"""Conflated emission (pure): at most one update per key per interval, and only when it changed.

A key marked dirty is emitted at once if its last emission is older than the interval, else when
the interval has passed (the caller polls :meth:`ready` on a short timer), so the final state is
always emitted once input goes idle.
"""

from __future__ import annotations

from typing import Any


class Conflator:
    def __init__(self, interval_s: float) -> None:
        self.interval = interval_s
        self.dirty: set[str] = set()
        self.last_time: dict[str, float] = {}
        self.last_value: dict[str, Any] = {}

    def mark(self, key: str) -> None:
        self.dirty.add(key)

    def ready(self, now: float, limit: int | None = None) -> list[str]:
        """Dirty keys whose interval has passed (at most ``limit``, the rest stay dirty for the next
        call); they are no longer dirty."""
        due = sorted(k for k in self.dirty if now - self.last_time.get(k, -1e18) >= self.interval)
        if limit is not None:
            due = due[:limit]
        self.dirty.difference_update(due)
        return due

    def changed(self, key: str, value: Any, now: float) -> bool:
        """Record ``value`` as emitted at ``now`` unless it equals the last one emitted."""
        if self.last_value.get(key) == value:
            return False
        self.last_value[key] = value
        self.last_time[key] = now
        return True

    def emitted(self, key: str, now: float) -> None:
        """Start ``key``'s interval at ``now`` (for a key that stands for a group of outputs)."""
        self.last_time[key] = now

    def forget(self, key: str) -> None:
        self.dirty.discard(key)
        self.last_time.pop(key, None)
        self.last_value.pop(key, None)
