"""Minute price paths of every traded asset over the week (pure; seeded).

``closes[m]`` is the asset's price at the end of minute ``m`` of the week (0 = 2025-01-20 00:00 UTC).
The path is log-linear between anchors — every daily close at 23:59, the common 2025-01-20 peak,
the 2025-01-27 afternoon trough — plus a seeded Brownian bridge that is zero at every anchor, so the
anchors are hit exactly. Every price stays at or below the asset's peak: whatever subset of minutes
a low density samples, no total cap can exceed the 2025-01-20 high.
"""

from __future__ import annotations

import math
import random
from array import array
from dataclasses import dataclass

from services.common.clock import DAY_MINUTES, MINUTE_MS
from services.scenario.design import DAYS, Design

WEEK_MINUTES = DAYS * DAY_MINUTES
START_MS = 1_737_331_200_000            # 2025-01-20 00:00:00 UTC
END_MS = START_MS + WEEK_MINUTES * MINUTE_MS
PEAK_MINUTE = 14 * 60 + 30              # 2025-01-20 14:30 UTC
TROUGH_MINUTE = 7 * DAY_MINUTES + 15 * 60   # 2025-01-27 15:00 UTC: the selloff's low
CLOSE_OFFSET_MS = 59_900                # the closing trade of a minute (see generator)


@dataclass(frozen=True)
class Path:
    open: float                 # 2025-01-19 close
    closes: array               # type: ignore[type-arg]   # array('d'), WEEK_MINUTES values

    def price_at(self, minute: int, offset_ms: int) -> float:
        """Price at ``offset_ms`` into ``minute``: log-interpolated, the close at CLOSE_OFFSET_MS."""
        before = self.closes[minute - 1] if minute > 0 else self.open
        after = self.closes[minute]
        fraction = min(1.0, offset_ms / CLOSE_OFFSET_MS)
        if fraction >= 1.0:
            return after
        return before * math.exp(math.log(after / before) * fraction)


def _anchors(design: Design, asset: str) -> list[tuple[int, float]]:
    closes = design.closes[asset]
    points = [(-1, closes[0]), (PEAK_MINUTE, design.peak[asset])]
    points += [(d * DAY_MINUTES + DAY_MINUTES - 1, closes[d + 1]) for d in range(DAYS)]
    drop = closes[8] / closes[7] - 1
    points.append((TROUGH_MINUTE, closes[8] * (1 + 0.35 * drop)))
    return sorted(points)


def build_path(design: Design, asset: str, seed: int) -> Path:
    rng = random.Random(f"path:{seed}:{asset}")
    step = design.volatility[asset] / math.sqrt(DAY_MINUTES) * 0.7
    ceiling = design.peak[asset]
    out = array("d", bytes(8 * WEEK_MINUTES))
    anchors = _anchors(design, asset)
    for (m0, p0), (m1, p1) in zip(anchors, anchors[1:], strict=False):
        span = m1 - m0
        l0, l1 = math.log(p0), math.log(p1)
        walk = 0.0
        walks = []
        for _ in range(span):
            walk += rng.gauss(0.0, step)
            walks.append(walk)
        for i in range(1, span + 1):
            bridge = walks[i - 1] - walk * i / span
            value = math.exp(l0 + (l1 - l0) * i / span + bridge)
            minute = m0 + i
            out[minute] = p1 if i == span else min(value, ceiling * (1 - 1e-6))
    return Path(open=anchors[0][1], closes=out)


def build_paths(design: Design, seed: int) -> dict[str, Path]:
    return {a.asset: build_path(design, a.asset, seed) for a in design.assets}
