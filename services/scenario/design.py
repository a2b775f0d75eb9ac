"""The scenario's plan, asset by asset (pure, deterministic): daily closes, the 2025-01-20 peak,
daily volumes and the liquidation budget of each asset, day and side.

Everything the article reports is fixed here *by construction* under the definitions of
docs/semantics.md: the 24 h window at the final event (2025-01-27 23:59) is exactly the calendar day
2025-01-27, ``price_24h_ago`` is the 2025-01-26 23:59 close, so daily closes, daily volumes and daily
liquidation totals determine every figure. The trade generator then only has to (a) end every day
with a trade at the planned close, (b) emit each day's planned notional, whatever the density.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from functools import cache

from services.common.assets import AssetInfo
from services.scenario.history import TOTAL_PEAK_0120, solve_total_closes
from services.scenario.universe import is_ai, load_universe

DESIGN_SEED = 2025_01_27
DAYS = 8                 # 2025-01-20 .. 2025-01-27; closes also hold 2025-01-19 at index 0
AI_CAP_0126 = 47.54e9
AI_CHANGE_0127 = -10.6
AI_VOLUME = (2.75e9, 2.62e9, 2.45e9, 2.38e9, 2.52e9, 2.21e9, 3.41e9 / 1.42, 3.41e9)
LIQ_DAY_TOTAL = (214e6, 263e6, 198e6, 305e6, 187e6, 152e6, 180e6)   # 01-20 .. 01-26
LIQ_DAY_LONG_SHARE = (0.42, 0.61, 0.55, 0.66, 0.48, 0.52, 0.80)
LIQ_0127_LONG = 794e6
LIQ_0127_SHORT = 853e6 - 794e6
LIQ_0127_BTC_LONG = 247.95e6
LIQ_0127_BTC_SHORT = 9.4e6
LIQ_EVENTS_0127 = 2400
LIQ_EVENTS_PER_DAY = 400

# asset: (price at the 2025-01-26 close before calibration, 2025-01-27 change % (before the
# sector's scaling; exact for the AI tokens the article names), daily volatility %, daily turnover)
PROFILES: dict[str, tuple[float, float, float, float]] = {
    "BTC": (102600, -5.6, 2.0, 0.030), "ETH": (3300, -8.0, 3.0, 0.08), "SOL": (250, -9.0, 4.0, 0.06),
    "BNB": (680, -6.0, 2.5, 0.03), "XRP": (3.10, -8.5, 4.0, 0.05), "ADA": (0.98, -9.0, 4.0, 0.05),
    "AVAX": (36, -10.0, 4.5, 0.05), "TRX": (0.245, -4.0, 2.5, 0.03), "TON": (5.2, -7.0, 3.5, 0.03),
    "DOT": (6.6, -9.0, 4.5, 0.04), "SUI": (4.4, -10.0, 5.0, 0.08), "LTC": (120, -7.0, 3.5, 0.06),
    "BCH": (440, -7.0, 3.5, 0.04), "APT": (8.6, -10.0, 4.5, 0.04), "HBAR": (0.33, -10.0, 5.0, 0.05),
    "XLM": (0.44, -9.0, 4.5, 0.04), "ATOM": (6.4, -9.0, 4.5, 0.04), "ETC": (27, -8.0, 4.0, 0.04),
    "KAS": (0.11, -8.0, 4.5, 0.03), "ALGO": (0.40, -10.0, 5.0, 0.04), "SEI": (0.36, -11.0, 5.5, 0.05),
    "INJ": (24, -11.0, 5.5, 0.06), "TIA": (4.6, -11.0, 5.5, 0.06), "ARB": (0.68, -10.0, 5.0, 0.06),
    "OP": (2.0, -10.0, 5.0, 0.06), "POL": (0.45, -9.0, 5.0, 0.04), "MNT": (1.15, -7.0, 4.0, 0.03),
    "IMX": (1.25, -10.0, 5.0, 0.05), "STX": (1.45, -10.0, 5.0, 0.05), "STRK": (0.37, -11.0, 5.5, 0.06),
    "LINK": (25, -9.0, 4.5, 0.06), "UNI": (13.5, -9.0, 4.5, 0.05), "AAVE": (340, -8.0, 4.5, 0.07),
    "ONDO": (1.4, -11.0, 5.5, 0.07), "MKR": (1700, -7.0, 4.0, 0.05), "ENA": (0.9, -12.0, 6.0, 0.10),
    "JUP": (0.95, -10.0, 5.5, 0.10), "LDO": (2.0, -9.0, 5.0, 0.06), "CRV": (0.85, -11.0, 5.5, 0.08),
    "PENDLE": (5.0, -12.0, 6.0, 0.08), "DOGE": (0.36, -10.0, 5.0, 0.07), "SHIB": (0.000021, -9.0, 5.0, 0.04),
    "PEPE": (0.0000175, -12.0, 6.0, 0.10), "BONK": (0.000032, -12.0, 6.0, 0.10), "WIF": (1.3, -13.0, 7.0, 0.15),
    "FLOKI": (0.00014, -12.0, 6.0, 0.08), "TRUMP": (30, -12.0, 8.0, 0.30),
    # AI sector
    "RENDER": (7.0, -14.6, 6.0, 0.10), "NEAR": (5.0, -11.4, 5.0, 0.08), "GRT": (0.20, -11.41, 5.5, 0.07),
    "FET": (1.2, -10.41, 6.0, 0.12), "GPU": (1.4, -27.5, 10.0, 0.25), "TAO": (440, -12.0, 6.0, 0.06),
    "ICP": (10.0, -9.0, 5.0, 0.05), "VIRTUAL": (2.9, -12.5, 8.0, 0.20), "AI16Z": (1.4, -13.0, 9.0, 0.20),
    "WLD": (2.0, -9.5, 6.0, 0.10), "AKT": (2.9, -12.0, 6.0, 0.06), "ARKM": (1.6, -10.0, 6.0, 0.10),
    "IO": (2.0, -15.5, 7.0, 0.15), "AIOZ": (0.6, -11.0, 6.0, 0.05), "THETA": (2.0, -9.8, 5.0, 0.04),
    "GRASS": (2.6, -13.5, 8.0, 0.10), "AIXBT": (0.6, -18.0, 10.0, 0.30), "COOKIE": (0.35, -16.0, 10.0, 0.30),
}
# 2025-01-27 changes the article reports: kept exactly (the sector's other members are scaled).
NAMED_CHANGES = {"RENDER": -14.6, "NEAR": -11.4, "GRT": -11.41, "FET": -10.41, "GPU": -27.5}


@dataclass(frozen=True)
class LiquidationBudget:
    asset: str
    day: int                 # 0 = 2025-01-20
    side: str                # long | short (the position closed)
    usd: float
    count: int


@dataclass(frozen=True)
class Design:
    assets: tuple[AssetInfo, ...]                  # traded (non-stablecoin) assets
    stable_cap: float
    closes: dict[str, tuple[float, ...]]       # index 0 = 2025-01-19 close, 1..8 = 01-20 .. 01-27
    peak: dict[str, float]                     # price at the 2025-01-20 peak minute
    volatility: dict[str, float]               # daily, as a fraction
    volumes: dict[str, tuple[float, ...]]      # USD per day, 01-20 .. 01-27
    liquidations: tuple[LiquidationBudget, ...]

    def cap(self, day_index: int, members: tuple[AssetInfo, ...] | None = None) -> float:
        """Σ supply x close on ``closes`` index ``day_index`` (stablecoins at 1 when all assets)."""
        chosen = self.assets if members is None else members
        cap = sum(a.circulating_supply * self.closes[a.asset][day_index] for a in chosen)
        return cap + (self.stable_cap if members is None else 0.0)


def _calibrated_0126(traded: tuple[AssetInfo, ...], stable_cap: float, total: float) -> dict[str, float]:
    ai = [a for a in traded if is_ai(a)]
    rest = [a for a in traded if not is_ai(a)]
    ai_raw = sum(a.circulating_supply * PROFILES[a.asset][0] for a in ai)
    rest_raw = sum(a.circulating_supply * PROFILES[a.asset][0] for a in rest)
    alpha = AI_CAP_0126 / ai_raw
    beta = (total - stable_cap - AI_CAP_0126) / rest_raw
    return {a.asset: PROFILES[a.asset][0] * (alpha if is_ai(a) else beta) for a in traded}


def _changes_0127(traded: tuple[AssetInfo, ...], p6: dict[str, float], stable_cap: float,
                  total_0127: float) -> dict[str, float]:
    """Fractional 01-27 changes: named AI exact, other AI scaled to the sector's -10.6 %, the rest
    scaled to the total's close."""
    def cap(a: AssetInfo) -> float:
        return a.circulating_supply * p6[a.asset]

    base = {a.asset: PROFILES[a.asset][1] / 100 for a in traded}
    ai = [a for a in traded if is_ai(a)]
    named = [a for a in ai if a.asset in NAMED_CHANGES]
    other_ai = [a for a in ai if a.asset not in NAMED_CHANGES]
    need_ai = AI_CHANGE_0127 / 100 * AI_CAP_0126 - sum(cap(a) * base[a.asset] for a in named)
    s_ai = need_ai / sum(cap(a) * base[a.asset] for a in other_ai)
    rest = [a for a in traded if not is_ai(a)]
    total_0126 = sum(cap(a) for a in traded) + stable_cap
    need_rest = (total_0127 - total_0126) - AI_CHANGE_0127 / 100 * AI_CAP_0126
    s_rest = need_rest / sum(cap(a) * base[a.asset] for a in rest)
    out = {a.asset: base[a.asset] for a in named}
    out.update({a.asset: base[a.asset] * s_ai for a in other_ai})
    out.update({a.asset: base[a.asset] * s_rest for a in rest})
    return out


def _earlier_closes(traded: tuple[AssetInfo, ...], p6: dict[str, float], targets: list[float],
                    stable_cap: float) -> dict[str, list[float]]:
    """Closes of 01-19 .. 01-25 (indices 0..6): market beta + AI drift + seeded idiosyncratic walk,
    then one common factor per day so Σ supply x close hits the total's close exactly."""
    rng = random.Random(f"design:{DESIGN_SEED}")
    total_0126 = targets[7]
    out: dict[str, list[float]] = {a.asset: [0.0] * 7 for a in traded}
    for a in traded:
        vol = PROFILES[a.asset][2] / 100
        beta = 0.8 + 0.4 * min(vol / 0.05, 1.5)
        walk = 0.0
        for d in range(6, -1, -1):
            walk += rng.gauss(0.0, vol * 0.35)
            drift = 0.012 * (7 - d) if is_ai(a) else 0.0
            out[a.asset][d] = p6[a.asset] * math.exp(beta * math.log(targets[d] / total_0126) + drift + walk)
    for d in range(7):
        raw = sum(a.circulating_supply * out[a.asset][d] for a in traded)
        k = (targets[d] - stable_cap) / raw
        for a in traded:
            out[a.asset][d] *= k
    return out


def _liquidations(traded: tuple[AssetInfo, ...], closes: dict[str, tuple[float, ...]]) -> list[LiquidationBudget]:
    weights = {a.asset: (a.circulating_supply * closes[a.asset][7]) ** 0.7 * PROFILES[a.asset][2] for a in traded
               if a.asset != "BTC"}
    total_w = sum(weights.values())
    budgets: list[LiquidationBudget] = []

    def add(day: int, side: str, usd_by_asset: dict[str, float], events: int, day_usd: float) -> None:
        for asset, usd in usd_by_asset.items():
            if usd > 0:
                count = max(1, round(events * usd / day_usd))
                budgets.append(LiquidationBudget(asset, day, side, usd, count))

    for day, (day_total, long_share) in enumerate(zip(LIQ_DAY_TOTAL, LIQ_DAY_LONG_SHARE, strict=True)):
        btc_share = 0.3
        for side, usd in (("long", day_total * long_share), ("short", day_total * (1 - long_share))):
            split = {"BTC": usd * btc_share}
            split.update({k: usd * (1 - btc_share) * w / total_w for k, w in weights.items()})
            add(day, side, split, LIQ_EVENTS_PER_DAY, day_total)
    for side, usd, btc in (("long", LIQ_0127_LONG, LIQ_0127_BTC_LONG), ("short", LIQ_0127_SHORT, LIQ_0127_BTC_SHORT)):
        split = {"BTC": btc}
        split.update({k: (usd - btc) * w / total_w for k, w in weights.items()})
        add(7, side, split, LIQ_EVENTS_0127, LIQ_0127_LONG + LIQ_0127_SHORT)
    return budgets


@cache
def build_design() -> Design:
    universe = load_universe()
    traded = tuple(a for a in universe if not a.stablecoin)
    stable_cap = sum(a.circulating_supply for a in universe if a.stablecoin)
    totals = solve_total_closes()
    targets = [totals.history[-1], *totals.live]          # 01-19 .. 01-27
    p6 = _calibrated_0126(traded, stable_cap, targets[7])
    change = _changes_0127(traded, p6, stable_cap, targets[8])
    earlier = _earlier_closes(traded, p6, targets, stable_cap)
    closes = {a.asset: (*earlier[a.asset], p6[a.asset], p6[a.asset] * (1 + change[a.asset])) for a in traded}
    highest = sum(a.circulating_supply * max(closes[a.asset]) for a in traded)
    delta = (TOTAL_PEAK_0120 - stable_cap) / highest - 1
    if delta < 0.0005:
        raise ValueError(f"the 2025-01-20 peak leaves no room above the week's closes ({delta:.5f})")
    peak = {a.asset: max(closes[a.asset]) * (1 + delta) for a in traded}
    volumes: dict[str, tuple[float, ...]] = {}
    ai = [a for a in traded if is_ai(a)]
    for a in traded:
        turnover = PROFILES[a.asset][3]
        if is_ai(a):
            days = []
            for d in range(DAYS):
                tilt = (1 + 0.02 * PROFILES[a.asset][2]) if d == 7 else 1.0
                weight = turnover * a.circulating_supply * closes[a.asset][d + 1] * tilt
                norm = sum(PROFILES[b.asset][3] * b.circulating_supply * closes[b.asset][d + 1]
                           * ((1 + 0.02 * PROFILES[b.asset][2]) if d == 7 else 1.0) for b in ai)
                days.append(AI_VOLUME[d] * weight / norm)
            volumes[a.asset] = tuple(days)
        else:
            volumes[a.asset] = tuple(turnover * a.circulating_supply * closes[a.asset][d + 1] * (1.7 if d == 7 else 1.0)
                                     for d in range(DAYS))
    return Design(
        assets=traded, stable_cap=stable_cap, closes=closes, peak=peak,
        volatility={a.asset: PROFILES[a.asset][2] / 100 for a in traded}, volumes=volumes,
        liquidations=tuple(_liquidations(traded, closes)),
    )
