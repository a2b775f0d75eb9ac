"""The article's figures and the pass/fail rule of each (pure; no I/O beyond reading the file).

A figure passes when the live value is within ``tolerance`` (relative) or ``abs`` (absolute) of
``value``, at least ``min``, at most ``max``, or equal to a string ``value``.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

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


# --- live values from gateway channels (pure) -------------------------------------------------

DATE_0124 = "2025-01-24"
DATE_0127 = "2025-01-27"
SCALAR_CHANNELS = {
    "total_cap": ("sector:total", "cap_usd"),
    "total_cap_change_24h": ("sector:total", "change_24h_pct"),
    "ai_cap_before": ("sector:ai", "cap_24h_ago_usd"),
    "ai_cap": ("sector:ai", "cap_usd"),
    "ai_cap_change_24h": ("sector:ai", "change_24h_pct"),
    "render_change_24h": ("asset:RENDER", "change_24h_pct"),
    "near_change_24h": ("asset:NEAR", "change_24h_pct"),
    "grt_change_24h": ("asset:GRT", "change_24h_pct"),
    "fet_change_24h": ("asset:FET", "change_24h_pct"),
    "gpu_change_24h": ("asset:GPU", "change_24h_pct"),
    "ai_volume_24h": ("sector:ai", "volume_24h_usd"),
    "ai_volume_change_24h": ("sector:ai", "volume_change_24h_pct"),
    "liq_total_24h": ("liquidations:24h:all", "total_usd"),
    "liq_long_24h": ("liquidations:24h:all", "long_usd"),
    "liq_btc_long_24h": ("liquidations:24h:asset:BTC", "long_usd"),
    "sma50_total": ("indicators:total:1d", "sma50"),
    "sma100_total": ("indicators:total:1d", "sma100"),
    "support_sma100": ("indicators:total:1d", "sma100"),
}
INDICATORS = "indicators:total:1d"
CANDLES = "candles:total:1d"
REPORT_CHANNELS = tuple(dict.fromkeys(
    [channel for channel, _ in SCALAR_CHANNELS.values()] + [CANDLES, "alerts:*"]))


def utc_date(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d")


def _on_day(records: list[dict[str, Any]], date: str) -> dict[str, Any] | None:
    """The last record whose candle opened on ``date`` (a closed one if there is any)."""
    day = [r for r in records if isinstance(r.get("open_time"), int) and utc_date(r["open_time"]) == date]
    closed = [r for r in day if r.get("closed") is True]
    chosen = closed or day
    return chosen[-1] if chosen else None


def live_values(records: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Each figure's live value from the records seen per channel (oldest first, latest last)."""
    out: dict[str, Any] = {}
    for figure_id, (channel, key) in SCALAR_CHANNELS.items():
        seen = records.get(channel)
        out[figure_id] = seen[-1].get(key) if seen else None
    indicators = records.get(INDICATORS, [])
    for figure_id, date in (("rsi14_total_2025-01-24", DATE_0124), ("rsi14_total_2025-01-27", DATE_0127)):
        record = _on_day(indicators, date)
        out[figure_id] = record.get("rsi14") if record else None
    candles = [c for c in records.get(CANDLES, []) if isinstance(c.get("high"), (int, float))]
    if candles:
        top = max(candles, key=lambda c: c["high"])
        out["local_high"], out["local_high_date"] = top["high"], utc_date(top["open_time"])
    else:
        out["local_high"] = out["local_high_date"] = None
    cap = out["total_cap"]
    out["support_psychological"] = psychological_support(cap) if isinstance(cap, (int, float)) else None
    ai = records.get("sector:ai")
    members = ai[-1].get("members", []) if ai else []
    out["worst_ai_large_cap"] = worst_large_cap(
        {m["asset"]: (m.get("cap_usd"), m.get("change_24h_pct")) for m in members if isinstance(m, dict)}) \
        if members else None
    return out


def evaluate_live(values: dict[str, Any]) -> list[Verdict]:
    """Verdicts of every figure; the local high must also be dated as the article dates it."""
    verdicts = []
    for verdict in evaluate_all(values):
        if verdict.figure.id == "local_high" and verdict.ok and values.get("local_high_date") != "2025-01-20":
            verdict = Verdict(verdict.figure, verdict.live, False, f"reached {values.get('local_high_date')}")
        verdicts.append(verdict)
    return verdicts


@dataclass(frozen=True, slots=True)
class SignalCheck:
    text: str
    ok: bool
    detail: str
    alert: str | None = None      # the id of a matching alert the processor raised, if any


def _number(values: dict[str, Any], key: str) -> float | None:
    value = values.get(key)
    return float(value) if isinstance(value, (int, float)) else None


def check_signals(values: dict[str, Any], alerts: list[dict[str, Any]]) -> list[SignalCheck]:
    """The article's expected signals, from the live values; matching alerts are named."""
    texts = expected_signals()

    def alert(kind: str, subject: str, fragment: str = "") -> str | None:
        ids = [str(a.get("id")) for a in alerts if a.get("kind") == kind and a.get("subject") == subject
               and fragment in str(a.get("id"))]
        return ids[-1] if ids else None

    rsi24, rsi27 = _number(values, "rsi14_total_2025-01-24"), _number(values, "rsi14_total_2025-01-27")
    ai_change, ai_vol = _number(values, "ai_cap_change_24h"), _number(values, "ai_volume_change_24h")
    long, total = _number(values, "liq_long_24h"), _number(values, "liq_total_24h")
    cap, sma50 = _number(values, "total_cap"), _number(values, "sma50_total")
    change = _number(values, "total_cap_change_24h")
    checks = [
        (rsi24 is not None and rsi27 is not None and rsi24 > 50 > rsi27, f"RSI {rsi24} -> {rsi27}",
         alert("rsi_cross", "total", ":rsi50:below")),
        (ai_change is not None and ai_change <= -10, f"AI 24 h change {ai_change}", alert("sector_drawdown", "ai")),
        (ai_vol is not None and ai_vol >= 38, f"AI volume change {ai_vol}", alert("volume_surge", "ai")),
        (long is not None and total and change is not None and long / total > 0.9 and change < 0,
         f"long share {None if not (long and total) else round(long / total, 3)}, cap change {change}",
         alert("liquidation_cascade", "all", ":long:")),
        (cap is not None and sma50 and 0 <= cap / sma50 - 1 <= 0.01,
         f"cap/SMA50 - 1 = {None if not (cap and sma50) else round((cap / sma50 - 1) * 100, 3)}%",
         alert("sma_cross", "total", ":sma50:testing")),
    ]
    return [SignalCheck(text, bool(ok), detail, found) for text, (ok, detail, found) in zip(texts, checks, strict=True)]
