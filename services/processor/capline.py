"""Cap series kept as per-minute differences (pure): Σ supply × last close of a sector's members.

A member's price over event time is a step function (its bucket closes, carried forward); a new,
changed or dropped close changes it on one step ``[minute, next close)``, which is two additions
to the sector's difference array. So one bar costs O(1) whatever the number of members, minutes or
sectors (plus a bisect in the member's closes), and the points of a candle are prefix sums taken
only when the candle is read, from the first minute that changed since the last read.

A minute's point exists when at least one member is priced then (a second difference array counts
them). Floats are added in another order than the oracle's plain sum; the rounding stays in the
last digits (the tests compare with a relative 1e-9).
"""

from __future__ import annotations

from array import array
from itertools import accumulate, islice

from services.processor.timeutil import MINUTE_MS

TRIM_SLOTS = 64     # slots before the floor folded into the head at once


class CapLine:
    """One sector's cap points, per minute slot from ``base``. Changes before ``floor`` (the oldest
    minute still read) are folded into ``head`` (value and priced count before the first slot), so
    the slots held never exceed ``max_slots`` whatever the event-time jumps."""

    __slots__ = ("base", "count_diff", "counts", "floor", "head_count", "head_value", "max_slots", "stale",
                 "top", "valid", "value_diff", "values")

    def __init__(self, max_slots: int, head_value: float = 0.0, head_count: int = 0) -> None:
        self.max_slots = max_slots
        self.base: int | None = None
        self.floor: int | None = None
        self.head_value, self.head_count = head_value, head_count
        self.value_diff, self.count_diff = array("d"), array("q")
        self.values, self.counts = array("d"), array("q")   # prefix sums of the slots before ``valid``
        self.valid = 0
        self.stale = 0      # ...of which the first ``stale`` are out of date (re-summed when read)
        self.top = 0        # slots in use: one after the newest slot a step was added to

    def step(self, minute: int, value: float, count: int) -> None:
        """From ``minute`` on, the sum changes by ``value`` and the priced count by ``count``."""
        j = self._add(minute, value, count)
        if j < self.valid:
            self._keep(max(j, 0))

    def _keep(self, valid: int) -> None:
        """Only the prefix sums before ``valid`` are still those of the slots."""
        self.valid = valid
        if valid <= self.stale:
            self.valid = self.stale = 0

    def _add(self, minute: int, value: float, count: int) -> int:
        """Add a step to the differences; returns its slot (-1: folded into the head). The prefix
        sums before ``valid`` are left as they were (the caller updates or drops them)."""
        if self.base is None:
            self.base = minute if self.floor is None else max(minute, self.floor)
        if minute < self.base:
            if self._folds(minute):
                self.head_value += value
                self.head_count += count
                return -1
            self._prepend((self.base - minute) // MINUTE_MS)
        j = (minute - self.base) // MINUTE_MS
        if j >= self.max_slots:
            self.trim(minute - (self.max_slots - 1) * MINUTE_MS, now=True)
            j = (minute - self.base) // MINUTE_MS
        n = len(self.value_diff)
        if j >= n:
            grow = min(max(j + 1 - n, 64), self.max_slots - n)   # never past max_slots (see _folds)
            self.value_diff.extend(array("d", bytes(8 * grow)))
            self.count_diff.extend(array("q", bytes(8 * grow)))
        self.value_diff[j] += value
        self.count_diff[j] += count
        if j >= self.top:
            self.top = j + 1
        return j

    def _folds(self, minute: int) -> bool:
        """A step at ``minute`` (before the first slot) goes to the head rather than to a new slot."""
        assert self.base is not None
        newest = self.base + self.top * MINUTE_MS    # the newest step, not the slots allocated after it
        return (self.floor is not None and minute < self.floor) or newest - minute > self.max_slots * MINUTE_MS

    def _prepend(self, k: int) -> None:
        if len(self.value_diff) + k > self.max_slots:   # drop the spare slots after the newest step
            del self.value_diff[self.top:], self.count_diff[self.top:]
        self.top += k
        self.value_diff[:0] = array("d", bytes(8 * k))
        self.count_diff[:0] = array("q", bytes(8 * k))
        assert self.base is not None
        self.base -= k * MINUTE_MS
        self._keep(0)

    def change(self, start: int, end: int | None, value: float, count: int) -> None:
        """The sum changes by ``value`` (the count by ``count``) on ``[start, end)``; None: onwards."""
        if value == 0.0 and count == 0:
            return
        base, valid = self.base, self.valid
        last = start if end is None else end
        if (base is None or not valid or last >= base + self.max_slots * MINUTE_MS
                or (start < base and not self._folds(start))):
            self.step(start, value, count)     # the slots move (or nothing is summed yet): sums dropped
            if end is not None:
                self.step(end, -value, -count)
            return
        self._add(start, value, count)
        if end is not None:
            self._add(end, -value, -count)
        i = (start - base) // MINUTE_MS     # the prefix sums kept move on the change's minutes
        k = valid if end is None else min(valid, (end - base) // MINUTE_MS)
        if i <= self.stale:                 # (a step before the first slot moved the head, and the
            if k > self.stale:              # points of the first slots are seldom read: marked stale)
                self.stale = k
                if k == valid:
                    self._keep(0)
        elif i < k:
            self.values[i:k] = array("d", map(float(value).__add__, self.values[i:k]))
            if count:
                self.counts[i:k] = array("q", map(count.__add__, self.counts[i:k]))

    def trim(self, minute: int, now: bool = False) -> None:
        """No point before ``minute`` is read any more: fold its slots into the head, once they are
        ``TRIM_SLOTS`` (moving every column by one slot per minute cost more than the rest), or
        ``now``. A slot kept before the floor reads as the head would: only later points are read."""
        self.floor = minute if self.floor is None else max(self.floor, minute)
        if self.base is None or self.floor <= self.base:
            return
        k = min((self.floor - self.base) // MINUTE_MS, len(self.value_diff))
        if k < TRIM_SLOTS and k < len(self.value_diff) and not now:
            return
        if k:
            if self.valid >= k > self.stale:
                self.head_value, self.head_count = self.values[k - 1], self.counts[k - 1]
            else:
                self.head_value += sum(self.value_diff[:k])
                self.head_count += sum(self.count_diff[:k])
            del self.value_diff[:k], self.count_diff[:k]
            del self.values[:min(k, len(self.values))], self.counts[:min(k, len(self.counts))]
            self.stale = max(0, self.stale - k)
            self.top = max(0, self.top - k)
            self._keep(max(0, self.valid - k))
        self.base = self.floor

    def _materialise(self, upto: int) -> None:
        """Prefix sums of the slots before ``upto`` (from the first slot changed since the last)."""
        upto = min(upto, len(self.value_diff))
        valid = self.valid
        if upto <= valid:
            return
        v = self.values[valid - 1] if valid else self.head_value
        c = self.counts[valid - 1] if valid else self.head_count
        del self.values[valid:], self.counts[valid:]
        self.values.extend(islice(accumulate(self.value_diff[valid:upto], initial=v), 1, None))
        self.counts.extend(islice(accumulate(self.count_diff[valid:upto], initial=c), 1, None))
        self.valid = upto

    def _refresh(self) -> None:
        """Re-sum the stale prefix sums from the head."""
        stale, self.stale = self.stale, 0
        self.values[:stale] = array("d", islice(accumulate(self.value_diff[:stale], initial=self.head_value), 1, None))
        self.counts[:stale] = array("q", islice(accumulate(self.count_diff[:stale], initial=self.head_count), 1, None))

    def points(self, start: int, end: int) -> list[float]:
        """The points (priced minutes only) of the minutes in ``[start, end)``, oldest first."""
        if end <= start:
            return []
        if self.base is None or start < self.base:
            before = end if self.base is None else min(end, self.base)
            head = [self.head_value] * ((before - start + MINUTE_MS - 1) // MINUTE_MS) if self.head_count > 0 else []
            return head if self.base is None else head + self.points(self.base, end)
        i = (start - self.base) // MINUTE_MS
        j = (end - self.base + MINUTE_MS - 1) // MINUTE_MS
        held = min(j, len(self.value_diff))
        out: list[float] = []
        if held:
            self._materialise(held)
            if self.stale > min(i, held - 1):
                self._refresh()
        if i < held:
            values, counts = self.values[i:held], self.counts[i:held]
            out = values.tolist() if min(counts) > 0 else [v for v, c in zip(values, counts, strict=True) if c > 0]
        if j > held:                     # minutes after the last slot: its point carried on
            last_v = self.values[held - 1] if held else self.head_value
            last_c = self.counts[held - 1] if held else self.head_count
            if last_c > 0:
                out += [last_v] * (j - max(held, i))
        return out
