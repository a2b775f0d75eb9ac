"""A plain batch recomputation of the article's figures from scenario frames (test helper).

Frames go through the real venue adapters; trades and liquidations are deduplicated by id; then
every figure is computed with the definitions of docs/semantics.md, written out the slow, obvious
way (no rings, no incremental state beyond the total cap's running value for the local high).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy
import talib

from services.common.events import Liquidation, Trade
from services.common.frames import RawFrame
from services.ingestor.instruments import load_instruments
from services.ingestor.venues.base import FrameError
from services.ingestor.venues.registry import venues
from services.scenario.backfill import history_candles
from services.scenario.figures import psychological_support, worst_large_cap
from services.scenario.universe import load_universe

MINUTE = 60_000
DAY = 86_400_000


@dataclass
class Parsed:
    trades: list[Trade] = field(default_factory=list)
    liquidations: list[Liquidation] = field(default_factory=list)
    bad: list[RawFrame] = field(default_factory=list)
    duplicates: int = 0


def parse(frames: Iterable[RawFrame]) -> Parsed:
    adapters = venues(load_instruments)
    out = Parsed()
    seen: set[tuple[str, str]] = set()
    for frame in frames:
        try:
            events = adapters[frame.venue].parse(frame.frame, frame.ts_recv)
        except FrameError:
            out.bad.append(frame)
            continue
        for event in events:
            key = (event.exchange, event.trade_id if isinstance(event, Trade) else event.id)
            if key in seen:
                out.duplicates += 1
                continue
            seen.add(key)
            (out.trades if isinstance(event, Trade) else out.liquidations).append(event)  # type: ignore[arg-type]
    return out


def _last_price(trades: list[Trade], before: int) -> float | None:
    """Price of the trade with the largest ts < ``before`` (ties: the later-arriving one)."""
    best: Trade | None = None
    for t in trades:
        if t.ts < before and (best is None or t.ts >= best.ts):
            best = t
    return None if best is None else best.price


def figures(parsed: Parsed) -> dict[str, Any]:
    universe = load_universe()
    by_asset: dict[str, list[Trade]] = {}
    for t in parsed.trades:
        by_asset.setdefault(t.base, []).append(t)
    now = max(t.ts for t in parsed.trades)
    window = now // MINUTE * MINUTE - 1439 * MINUTE
    prev_window = window - 1440 * MINUTE
    price, ago, vol, vol_prev = {}, {}, {}, {}
    for a in universe:
        trades = by_asset.get(a.asset, [])
        if a.stablecoin and not trades:
            price[a.asset] = ago[a.asset] = 1.0
        else:
            price[a.asset] = _last_price(trades, now + 1)
            ago[a.asset] = _last_price(trades, window) or min(trades, key=lambda t: t.ts).price
        vol[a.asset] = sum(t.notional_usd for t in trades if window <= t.ts <= now)
        vol_prev[a.asset] = sum(t.notional_usd for t in trades if prev_window <= t.ts < window)

    def cap(members: list[Any], prices: dict[str, Any]) -> float:
        return sum(m.circulating_supply * prices[m.asset] for m in members)

    ai = [a for a in universe if "ai" in a.sectors]
    change = {a.asset: (price[a.asset] / ago[a.asset] - 1) * 100 for a in universe}
    total, total_ago = cap(list(universe), price), cap(list(universe), ago)
    ai_cap, ai_ago = cap(ai, price), cap(ai, ago)
    ai_vol, ai_vol_prev = sum(vol[a.asset] for a in ai), sum(vol[a.asset] for a in ai)
    ai_vol_prev = sum(vol_prev[a.asset] for a in ai)
    liq = [x for x in parsed.liquidations if window <= x.ts <= now]
    closes = daily_closes(parsed, [c["close"] for c in history_candles() if c["interval"] == "1d"])
    rsi = talib.RSI(numpy.array(closes), timeperiod=14)
    high, high_day = local_high(parsed)
    return {
        "total_cap": total,
        "total_cap_change_24h": (total / total_ago - 1) * 100,
        "ai_cap_before": ai_ago,
        "ai_cap": ai_cap,
        "ai_cap_change_24h": (ai_cap / ai_ago - 1) * 100,
        "render_change_24h": change["RENDER"],
        "near_change_24h": change["NEAR"],
        "grt_change_24h": change["GRT"],
        "fet_change_24h": change["FET"],
        "gpu_change_24h": change["GPU"],
        "worst_ai_large_cap": worst_large_cap({a.asset: (a.circulating_supply * price[a.asset], change[a.asset]) for a in ai}),
        "ai_volume_24h": ai_vol,
        "ai_volume_change_24h": (ai_vol / ai_vol_prev - 1) * 100,
        "liq_total_24h": sum(x.notional_usd for x in liq),
        "liq_long_24h": sum(x.notional_usd for x in liq if x.liquidated_side == "long"),
        "liq_btc_long_24h": sum(x.notional_usd for x in liq if x.liquidated_side == "long" and x.base == "BTC"),
        "rsi14_total_2025-01-24": float(rsi[-4]),
        "rsi14_total_2025-01-27": float(rsi[-1]),
        "rsi14_total_2025-01-25": float(rsi[-3]),
        "rsi14_total_2025-01-26": float(rsi[-2]),
        "sma50_total": sum(closes[-50:]) / 50,
        "sma100_total": sum(closes[-100:]) / 100,
        "local_high": high,
        "local_high_date": high_day,
        "support_psychological": psychological_support(total),
        "support_sma100": sum(closes[-100:]) / 100,
    }


def daily_closes(parsed: Parsed, history: list[float]) -> list[float]:
    """History closes then, per live day, Σ supply x last price at the day's end (stablecoins 1)."""
    universe = load_universe()
    start = min(t.ts for t in parsed.trades) // DAY * DAY
    end = max(t.ts for t in parsed.trades)
    by_asset: dict[str, list[Trade]] = {}
    for t in parsed.trades:
        by_asset.setdefault(t.base, []).append(t)
    out = list(history)
    day_end = start + DAY
    while day_end <= end + DAY:
        out.append(sum(a.circulating_supply * (1.0 if a.stablecoin else (_last_price(by_asset[a.asset], day_end) or 0.0))
                       for a in universe))
        day_end += DAY
    return out


def local_high(parsed: Parsed) -> tuple[float, str]:
    """The highest total cap over event time (running Σ supply x last price), and its UTC date."""
    universe = {a.asset: a for a in load_universe()}
    last: dict[str, float] = {a: 1.0 for a, x in universe.items() if x.stablecoin}
    total = sum(universe[a].circulating_supply for a in last)
    best, best_ts = 0.0, 0
    for t in sorted(parsed.trades, key=lambda t: t.ts):
        supply = universe[t.base].circulating_supply
        total += supply * (t.price - last.get(t.base, 0.0))
        last[t.base] = t.price
        if len(last) == len(universe) and total > best:
            best, best_ts = total, t.ts
    return best, dt.datetime.fromtimestamp(best_ts / 1000, dt.UTC).strftime("%Y-%m-%d")
