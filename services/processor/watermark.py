"""Event-time watermark over the trade-bars partitions that feed the sector stage (pure).

Stage 1 reports, per source partition, its progress: the largest bar event time it has applied from
that partition (the records it sent before the report hold every bucket up to there). The
watermark is the smallest progress of the *active* sources; a cap-series interval closes once the
watermark minus the allowed lateness has left it. A source that has sent nothing while the others
kept sending for ``idle_s`` of wall time (measured on the stage's own clock, so a pause of the
whole processor makes no source idle) stops holding the watermark back until it sends again, but
only if its last report said stage 1 had read it to its end (``caught_up``) and the others' event
time moved on since then at no more than ``IDLE_MAX_SPEED`` x wall time: a partition whose fetches
are starved by the others in a replay (event time racing ahead) is behind, not quiet.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson

SOURCE_KEY_PREFIX = "@src"
IDLE_MAX_SPEED = 2.0     # event ms per wall ms the others may advance while a source counts as quiet
RELEASE_QUIET_S = 2.0    # wall seconds after which a source read to its end stops holding records back


def source_key(src: int) -> str:
    """Table key of a source's progress (same ``name|number`` shape as the bucket keys)."""
    return f"{SOURCE_KEY_PREFIX}|{src}"


def progress_record(src: int, wm: int, caught_up: bool = True) -> bytes:
    """What stage 1 sends after a batch: its progress on one source partition, and whether it had
    read that partition to its end."""
    return orjson.dumps({"src": src, "wm": wm, "caught_up": caught_up})


class Watermark:
    __slots__ = ("caught_up", "idle_s", "last_seen", "latest", "lateness_ms", "lead_at_seen", "progress")

    def __init__(self, lateness_ms: int = 0, idle_s: float = 10.0) -> None:
        self.lateness_ms = lateness_ms
        self.idle_s = idle_s
        self.progress: dict[int, int] = {}
        self.last_seen: dict[int, float | None] = {}   # None: not heard from since (re)start
        self.latest: float | None = None
        self.caught_up: dict[int, bool] = {}          # a source's last report: read to its end
        self.lead_at_seen: dict[int, int] = {}        # the largest progress when a source was last heard

    def expect(self, sources: Iterable[int]) -> None:
        """Sources that hold the watermark back before their first report (until they are idle)."""
        for src in sources:
            self.last_seen.setdefault(src, None)

    def reset(self) -> None:
        """Forget all progress (before a restore); known sources hold the watermark back again."""
        self.progress.clear()
        self.caught_up.clear()
        self.lead_at_seen.clear()
        self.last_seen = dict.fromkeys(self.last_seen)
        self.latest = None

    def restore(self, src: int, wm: int) -> None:
        self.progress[src] = max(self.progress.get(src, wm), wm)
        self.last_seen.setdefault(src, None)

    def observe(self, src: int, wm: int | None, now: float, caught_up: bool | None = None) -> None:
        """A record from ``src`` at wall time ``now``, with its progress when known."""
        self.tick(now)
        self.last_seen[src] = self.latest
        if caught_up is not None:
            self.caught_up[src] = caught_up
        if wm is not None:
            self.progress[src] = max(self.progress.get(src, wm), wm)
        lead = self.lead()
        self.lead_at_seen[src] = lead
        for other, at in self.lead_at_seen.items():
            if at < 0:             # heard of before any progress was known: from the first one
                self.lead_at_seen[other] = lead

    def lead(self) -> int:
        return max(self.progress.values()) if self.progress else -1

    def tick(self, now: float) -> None:
        self.latest = now if self.latest is None else max(self.latest, now)
        for src, seen in self.last_seen.items():
            if seen is None:       # heard of (expected or restored): quiet from now on, at this lead
                self.last_seen[src] = self.latest
                self.lead_at_seen[src] = self.lead()

    def active(self) -> list[int]:
        latest = self.latest
        if latest is None:
            return list(self.last_seen)
        return [s for s, seen in self.last_seen.items() if seen is None or not self._idle(s, latest - seen)]

    def _idle(self, src: int, quiet_s: float) -> bool:
        if quiet_s <= self.idle_s or not self.caught_up.get(src, True):
            return False
        moved_ms = self.lead() - self.lead_at_seen.get(src, self.lead())
        return moved_ms <= quiet_s * 1000 * IDLE_MAX_SPEED

    def value(self) -> int | None:
        """min progress over the active sources; None while an active source has reported none."""
        return self._min_progress(self.active())

    def _min_progress(self, holding: list[int]) -> int | None:
        """The smallest progress of ``holding`` (the lead when none holds); None while one of them
        has reported none."""
        if not holding:
            return self.lead() if self.progress else None
        values = [self.progress.get(s) for s in holding]
        return None if any(v is None for v in values) else min(v for v in values if v is not None)

    def release_time(self) -> int | None:
        """Event time up to which every source has sent its records, for the sector stage to apply
        what it holds (laxer than :meth:`value`, which closes candles): a source stops holding back
        once it has been quiet for ``RELEASE_QUIET_S`` after a report that it was read to its end
        (a live partition without trades), or for ``idle_s`` whatever its report (a source that
        never sends, or whose fetches are starved); None while a holding source has not reported."""
        latest = self.latest
        holding = []
        for src, seen in self.last_seen.items():
            quiet = 0.0 if latest is None or seen is None else latest - seen
            if quiet > self.idle_s or (quiet > RELEASE_QUIET_S and self.caught_up.get(src, False)):
                continue
            holding.append(src)
        return self._min_progress(holding)

    def close_time(self) -> int | None:
        """Event time up to which cap-series intervals may close (watermark minus lateness)."""
        value = self.value()
        return None if value is None else value - self.lateness_ms
