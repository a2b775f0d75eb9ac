"""The daily closes of total market cap: 120 backfilled days plus the live week (pure, deterministic).

The history is a piecewise log-linear curve through dated knots (the autumn-2024 rally, the
December top, the early-January dip) with a seeded Brownian-bridge wiggle. Four knobs (level of the
late knots, level of the early knots, wiggle amplitude, the 2025-01-24 close) are solved by Newton's
method so that, with the live week's closes appended, RSI(14) and the 50/100-day SMAs land on the
article's figures. The batch RSI/SMA here exist for that solve only; the processor computes its own.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

HISTORY_DAYS = 120
LIVE_DAYS = 8
RSI_PERIOD = 14
HISTORY_SEED = 7

# Live week (2025-01-20 .. 2025-01-27) closes of total cap in USD; index 4 (01-24) is solved.
TOTAL_CLOSE_0127 = 3.38e12
TOTAL_CHANGE_0127 = -6.4
TOTAL_CLOSE_0126 = TOTAL_CLOSE_0127 / (1 + TOTAL_CHANGE_0127 / 100)
TOTAL_CLOSE_0120 = 3.685e12       # the local high's day closes just under its intraday peak
TOTAL_PEAK_0120 = 3.695e12
HISTORY_CEILING = 3.65e12         # every backfilled value stays below the 2025-01-20 high

# Targets of the solve (article-figures.json): RSI at the 01-24 and 01-27 closes, SMA50, SMA100.
TARGETS = (57.0, 43.0, 3.362e12, 3.10e12)

# (day index from 2024-09-22, level in T USD, group): "late" is scaled by knob a, "early" by b;
# the January knots are fixed (they shape RSI(14) at the week's closes).
KNOTS: tuple[tuple[int, float, str], ...] = (
    (0, 2.12, "early"), (20, 2.30, "early"), (35, 2.27, "early"), (45, 2.42, "early"),
    (58, 3.02, "early"), (70, 3.22, "late"), (80, 3.45, "late"), (87, 3.52, "late"),
    (96, 3.28, "late"), (103, 3.45, "fixed"), (107, 3.60, "fixed"), (110, 3.45, "fixed"),
    (112, 3.50, "fixed"), (116, 3.60, "fixed"), (119, 3.58, "fixed"),
)


def rsi_series(closes: Sequence[float], period: int = RSI_PERIOD) -> list[float | None]:
    """Wilder RSI with TA-Lib's seeding (simple mean of the first ``period`` changes)."""
    out: list[float | None] = [None] * len(closes)
    if len(closes) <= period:
        return out
    gains = [max(b - a, 0.0) for a, b in zip(closes, closes[1:], strict=False)]
    losses = [max(a - b, 0.0) for a, b in zip(closes, closes[1:], strict=False)]
    avg_gain = sum(gains[:period]) / period
    avg_loss = sum(losses[:period]) / period

    def value() -> float:
        return 100.0 if avg_loss == 0 else 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)

    out[period] = value()
    for i in range(period, len(gains)):
        avg_gain = (avg_gain * (period - 1) + gains[i]) / period
        avg_loss = (avg_loss * (period - 1) + losses[i]) / period
        out[i + 1] = value()
    return out


def sma(closes: Sequence[float], n: int) -> float:
    return sum(closes[-n:]) / n


def _bridge(rng: random.Random, length: int) -> list[float]:
    """A Brownian bridge of ``length`` + 1 points, zero at both ends, unit step deviation."""
    walk = [0.0]
    for _ in range(length):
        walk.append(walk[-1] + rng.gauss(0.0, 1.0))
    end = walk[-1]
    return [w - end * i / length for i, w in enumerate(walk)]


@dataclass(frozen=True)
class TotalCloses:
    history: tuple[float, ...]     # 2024-09-22 .. 2025-01-19
    live: tuple[float, ...]        # 2025-01-20 .. 2025-01-27
    knobs: tuple[float, float, float, float]

    @property
    def all(self) -> list[float]:
        return [*self.history, *self.live]


def _wiggles() -> list[list[float]]:
    rng = random.Random(f"history:{HISTORY_SEED}")
    return [_bridge(rng, b[0] - a[0]) for a, b in zip(KNOTS, KNOTS[1:], strict=False)]


def _build(knobs: Sequence[float], wiggles: list[list[float]]) -> TotalCloses:
    a, b, amp, close_0124 = knobs
    scale = {"late": a, "early": b, "fixed": 1.0}
    levels = [math.log(level * 1e12 * scale[group]) for _, level, group in KNOTS]
    history: list[float] = []
    for k, ((day0, _, _), (day1, _, _)) in enumerate(zip(KNOTS, KNOTS[1:], strict=False)):
        span = day1 - day0
        start = 0 if k == 0 else 1
        for i in range(start, span + 1):
            trend = levels[k] + (levels[k + 1] - levels[k]) * i / span
            history.append(math.exp(trend + amp * wiggles[k][i]))
    live = (TOTAL_CLOSE_0120, 3.652e12, 3.628e12, 3.596e12, close_0124,
            (close_0124 + TOTAL_CLOSE_0126) / 2 + 0.012e12, TOTAL_CLOSE_0126, TOTAL_CLOSE_0127)
    return TotalCloses(tuple(history), live, (a, b, amp, close_0124))


def measures(closes: TotalCloses) -> tuple[float, float, float, float]:
    """RSI at the 01-24 close, RSI at the 01-27 close, SMA50 and SMA100 at the 01-27 close."""
    series = closes.all
    rsi = rsi_series(series)
    rsi_0124, rsi_0127 = rsi[-4], rsi[-1]
    assert rsi_0124 is not None and rsi_0127 is not None
    return rsi_0124, rsi_0127, sma(series, 50), sma(series, 100)


def _solve_linear(matrix: list[list[float]], rhs: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting (4x4)."""
    n = len(rhs)
    m = [row[:] + [rhs[i]] for i, row in enumerate(matrix)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(m[r][col]))
        m[col], m[pivot] = m[pivot], m[col]
        for r in range(col + 1, n):
            f = m[r][col] / m[col][col]
            for c in range(col, n + 1):
                m[r][c] -= f * m[col][c]
    x = [0.0] * n
    for r in range(n - 1, -1, -1):
        x[r] = (m[r][n] - sum(m[r][c] * x[c] for c in range(r + 1, n))) / m[r][r]
    return x


@cache
def solve_total_closes() -> TotalCloses:
    """Newton's method on the four knobs (deterministic: the history is part of the scenario's
    definition, the same whatever the trade seed)."""
    wiggles = _wiggles()
    scales = (1.0, 1.0, 0.01, 1e12)          # residuals and knobs in comparable units
    res_scales = (1.0, 1.0, 1e10, 1e10)
    x = [0.93, 1.08, 0.03, 3.60e12]

    def residual(knobs: Sequence[float]) -> list[float]:
        got = measures(_build(knobs, wiggles))
        return [(g - t) / s for g, t, s in zip(got, TARGETS, res_scales, strict=True)]

    for _ in range(40):
        r = residual(x)
        if max(abs(v) for v in r) < 1e-4:
            break
        jac = [[0.0] * 4 for _ in range(4)]
        for j in range(4):
            h = scales[j] * 1e-4
            xp = list(x)
            xp[j] += h
            rp = residual(xp)
            for i in range(4):
                jac[i][j] = (rp[i] - r[i]) / h
        step = _solve_linear(jac, [-v for v in r])
        x = [xi + 0.7 * si for xi, si in zip(x, step, strict=True)]
        x[2] = abs(x[2])
    closes = _build(x, wiggles)
    if max(closes.history) >= HISTORY_CEILING:
        raise ValueError(f"history reaches {max(closes.history):.4g}, above the 2025-01-20 high")
    return closes
