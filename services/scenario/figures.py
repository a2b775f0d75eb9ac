"""The article's figures and the pass/fail rule of each (pure; no I/O beyond reading the file).

A figure passes when the live value is within ``tolerance`` (relative) or ``abs`` (absolute) of
``value``, at least ``min``, at most ``max``, or equal to a string ``value``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

FIGURES_FILE = Path(__file__).resolve().parent / "data" / "article-figures.json"
SUPPORT_STEP = 0.2e12         # 'psychological' support: multiples of $0.2T


@dataclass(frozen=True, slots=True)
class Figure:
    id: str
    what: str
    value: float | str | None = None
    tolerance: float | None = None
    abs: float | None = None
    min: float | None = None
    max: float | None = None

    def target(self) -> str:
        """The article's figure with its tolerance, as printed in the report."""
        if isinstance(self.value, str):
            return self.value
        if self.value is None:
            bound = f">= {self.min:g}" if self.min is not None else f"<= {self.max:g}"
            return bound
        if self.tolerance is not None:
            return f"{human(self.value)} ±{self.tolerance * 100:g}%"
        return f"{human(self.value)} ±{self.abs:g}"


@dataclass(frozen=True, slots=True)
class Verdict:
    figure: Figure
    live: float | str | None
    ok: bool
    why: str = ""


@cache
def load_figures(path: Path = FIGURES_FILE) -> tuple[Figure, ...]:
    data = json.loads(path.read_text())
    keys = ("value", "tolerance", "abs", "min", "max")
    return tuple(Figure(f["id"], f.get("what", ""), **{k: f[k] for k in keys if k in f})
                 for f in data["figures"])


@cache
def expected_signals(path: Path = FIGURES_FILE) -> tuple[str, ...]:
    return tuple(json.loads(path.read_text())["expected_signals"])


def evaluate(figure: Figure, live: float | str | None) -> Verdict:
    if live is None:
        return Verdict(figure, None, False, "no live value")
    if isinstance(figure.value, str) or isinstance(live, str):
        return Verdict(figure, live, live == figure.value, "" if live == figure.value else "differs")
    number = float(live)
    if figure.min is not None and number < figure.min:
        return Verdict(figure, number, False, f"below {figure.min:g}")
    if figure.max is not None and number > figure.max:
        return Verdict(figure, number, False, f"above {figure.max:g}")
    if figure.value is not None:
        target = float(figure.value)
        if figure.tolerance is not None:
            off = abs(number / target - 1)
            if off > figure.tolerance:
                return Verdict(figure, number, False, f"off by {off * 100:.2f}%")
        elif figure.abs is not None and abs(number - target) > figure.abs:
            return Verdict(figure, number, False, f"off by {number - target:+.3g}")
    return Verdict(figure, number, True)


def evaluate_all(live: dict[str, float | str | None]) -> list[Verdict]:
    return [evaluate(f, live.get(f.id)) for f in load_figures()]


def psychological_support(cap: float, step: float = SUPPORT_STEP) -> float:
    """The nearest multiple of ``step`` strictly below ``cap``."""
    below = (cap // step) * step
    return below - step if below >= cap else below


def worst_large_cap(members: dict[str, tuple[float | None, float | None]], floor: float = 1e9) -> str | None:
    """The member with the lowest 24 h change among those with a cap above ``floor``.
    ``members``: asset -> (market cap, change %)."""
    large = [(change, asset) for asset, (cap, change) in members.items()
             if cap is not None and change is not None and cap > floor]
    return min(large)[1] if large else None


def human(value: float) -> str:
    """$3.38T, $47.54B, $853.0M, or the number as is for percentages and indices."""
    size = abs(value)
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6)):
        if size >= scale:
            return f"${value / scale:.2f}{unit}" if unit != "M" else f"${value / scale:.1f}M"
    return f"{value:g}"
