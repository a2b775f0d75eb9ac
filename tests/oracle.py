"""The oracle: a plain batch recomputation of every emitted figure from raw events.

Written independently of the streaming code (no rings, no incremental state): it shares only the
definitions of docs/semantics.md and the constants of ``timeutil``. Tests and the scenario
acceptance test compare the processor's output topics with :func:`compute`.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from typing import Any

from services.common.assets import AssetInfo
from services.common.events import Liquidation, Trade, TradeBar
from services.processor.reference import Universe
from services.processor.timeutil import (
    DAY_MINUTES,
    LIQUIDATION_WINDOWS,
    MINUTE_MS,
    RING_MINUTES,
    USD_QUOTES,
    minute_of,
)


def trade_as_bar(trade: Trade) -> TradeBar:
    """A single trade as the one-trade bar the ingestor would publish for it."""
    return TradeBar(
        id=f"{trade.exchange}:{trade.instrument}:{trade.trade_id}:{trade.trade_id}:1", exchange=trade.exchange,
        instrument=trade.instrument, base=trade.base, quote=trade.quote, market=trade.market,
        minute=minute_of(trade.ts), count=1, volume=trade.size, notional_usd=trade.notional_usd,
        buy_notional_usd=trade.notional_usd if trade.side == "buy" else 0.0, open=trade.price,
        high=trade.price, low=trade.price, close=trade.price, first_trade_id=trade.trade_id,
        last_trade_id=trade.trade_id, ts_first=trade.ts, ts_last=trade.ts, ts_recv=trade.ts_recv)


def _universe(assets: Universe | Iterable[AssetInfo | dict[str, Any]]) -> dict[str, AssetInfo]:
    if isinstance(assets, Universe):
        return dict(assets.assets)
    infos = [a if isinstance(a, AssetInfo) else AssetInfo.from_dict(a) for a in assets]
    return {i.asset: i for i in infos}


def _pct(new: float | None, old: float | None) -> float | None:
    if new is None or old is None or old == 0:
        return None
    return (new / old - 1.0) * 100.0


def _usable(base: str, quote: str, universe: dict[str, AssetInfo]) -> bool:
    return base.upper() in universe and quote.upper() in USD_QUOTES


def asset_stats(bars: Sequence[TradeBar], universe: dict[str, AssetInfo],
                now_ms: int | None = None) -> dict[str, dict[str, Any]]:
    out = {}
    for asset, held in _held(bars, universe, now_ms).items():
        now = held[-1].ts_last
        day_first = minute_of(now) - (DAY_MINUTES - 1) * MINUTE_MS
        prev_first = day_first - DAY_MINUTES * MINUTE_MS
        day = [b for b in held if b.minute >= day_first]
        prev = [b for b in held if prev_first <= b.minute < day_first]
        earlier = [b for b in held if b.minute < day_first]
        last = held[-1]
        first = min(day, key=lambda b: (b.ts_first, b.id)) if day else None
        open_24h = first.open if first else None
        ago = earlier[-1].close if earlier else open_24h
        info = universe[asset]
        volume = sum(b.notional_usd for b in day)
        volume_prev = sum(b.notional_usd for b in prev)
        out[asset] = {
            "asset": asset, "price": last.close, "price_24h_ago": ago, "open_24h": open_24h,
            "high_24h": max((b.high for b in day), default=None), "low_24h": min((b.low for b in day), default=None),
            "change_24h_pct": _pct(last.close, ago), "volume_24h_usd": volume, "volume_prev_24h_usd": volume_prev,
            "volume_change_24h_pct": _pct(volume, volume_prev), "trades_24h": sum(b.count for b in day),
            "circulating_supply": info.circulating_supply, "market_cap_usd": last.close * info.circulating_supply,
            "sectors": list(info.sectors), "ts": now,
        }
    return out


def liquidation_totals(liqs: Sequence[Liquidation], universe: dict[str, AssetInfo],
                       now_ms: int | None = None) -> dict[str, dict[str, Any]]:
    unique: dict[tuple[str, str], Liquidation] = {}
    for q in liqs:
        if _usable(q.base, q.quote, universe) and (now_ms is None or q.ts <= now_ms):
            unique.setdefault((q.exchange, q.id), q)
    if not unique:
        return {}
    now = max(q.ts for q in unique.values())
    out = {}
    day_first = minute_of(now) - (DAY_MINUTES - 1) * MINUTE_MS
    in_day = [q for q in unique.values() if minute_of(q.ts) >= day_first]
    scopes = {s for q in in_day for s in ("all", f"asset:{q.base.upper()}", f"exchange:{q.exchange}")}
    for window, minutes in LIQUIDATION_WINDOWS.items():
        first_minute = minute_of(now) - (minutes - 1) * MINUTE_MS
        for scope in scopes:
            chosen = [q for q in in_day if minute_of(q.ts) >= first_minute and (
                scope == "all" or scope == f"asset:{q.base.upper()}" or scope == f"exchange:{q.exchange}")]
            longs = [q for q in chosen if q.liquidated_side == "long"]
            shorts = [q for q in chosen if q.liquidated_side == "short"]
            top = max(chosen, key=lambda q: (q.notional_usd, q.ts, q.exchange, q.id)) if chosen else None
            long_usd = sum(q.notional_usd for q in longs)
            short_usd = sum(q.notional_usd for q in shorts)
            out[f"{window}:{scope}"] = {
                "window": window, "scope": scope, "long_usd": long_usd, "short_usd": short_usd,
                "total_usd": long_usd + short_usd, "long_count": len(longs), "short_count": len(shorts),
                "count": len(chosen), "ts": now,
                "largest": None if top is None else {
                    "notional_usd": top.notional_usd, "liquidated_side": top.liquidated_side,
                    "exchange": top.exchange, "instrument": top.instrument, "price": top.price, "ts": top.ts},
            }
    return out


def _held(bars: Sequence[TradeBar], universe: dict[str, AssetInfo], now_ms: int | None) -> dict[str, list[TradeBar]]:
    """Per asset, the unique usable bars its own 48 h ring holds."""
    unique: dict[str, TradeBar] = {}
    for b in bars:
        if _usable(b.base, b.quote, universe) and (now_ms is None or b.ts_last <= now_ms):
            unique.setdefault(b.id, b)
    by_asset: dict[str, list[TradeBar]] = {}
    for b in unique.values():
        by_asset.setdefault(b.base.upper(), []).append(b)
    held = {}
    for asset, all_bars in by_asset.items():
        first = minute_of(max(b.ts_last for b in all_bars)) - (RING_MINUTES - 1) * MINUTE_MS
        held[asset] = sorted((b for b in all_bars if b.minute >= first), key=lambda b: (b.ts_last, b.ts_recv, b.id))
    return held


def _closes_by_minute(bars: list[TradeBar]) -> tuple[list[int], list[float]]:
    """Minutes with a bar and the close of each minute's latest bar (``bars`` in close order)."""
    last: dict[int, float] = {}
    for b in bars:
        last[b.minute] = b.close
    minutes = sorted(last)
    return minutes, [last[m] for m in minutes]


def _last_close(closes: tuple[list[int], list[float]], minute: int) -> float | None:
    """Close of the latest bar whose minute is at or before ``minute``."""
    i = bisect.bisect_right(closes[0], minute)
    return closes[1][i - 1] if i else None


def sector_caps(bars: Sequence[TradeBar], universe: dict[str, AssetInfo], names: dict[str, str],
                now_ms: int | None = None) -> dict[str, dict[str, Any]]:
    held = _held(bars, universe, now_ms)
    if not held:
        return {}
    now = max(b.ts_last for bs in held.values() for b in bs)
    day_first = minute_of(now) - (DAY_MINUTES - 1) * MINUTE_MS
    prev_first = day_first - DAY_MINUTES * MINUTE_MS
    rows: dict[str, dict[str, Any]] = {}
    for asset, info in universe.items():
        mine = held.get(asset, [])
        ago: float | None
        if mine:
            price: float | None = mine[-1].close
            earlier = [b for b in mine if b.minute < day_first]
            day = [b for b in mine if b.minute >= day_first]
            ago = earlier[-1].close if earlier else min(day, key=lambda b: (b.ts_first, b.id)).open
        else:
            price = ago = 1.0 if info.stablecoin else None
            day = []
        volume = sum(b.notional_usd for b in day)
        volume_prev = sum(b.notional_usd for b in mine if prev_first <= b.minute < day_first)
        rows[asset] = {"asset": asset, "price": price,
                       "cap_usd": None if price is None else price * info.circulating_supply,
                       "ago": None if ago is None else ago * info.circulating_supply,
                       "change_24h_pct": _pct(price, ago), "volume": volume, "volume_prev": volume_prev}
    sectors = {"total": sorted(universe)}
    for asset, info in universe.items():
        for sector in info.sectors:
            sectors.setdefault(sector, []).append(asset)
    out = {}
    for sector, assets in sectors.items():
        members = [rows[a] for a in sorted(assets)]
        priced = [m for m in members if m["cap_usd"] is not None]
        cap = sum(m["cap_usd"] for m in priced)
        ago_cap = sum(m["ago"] for m in priced) if priced else None
        volume = sum(m["volume"] for m in members)
        volume_prev = sum(m["volume_prev"] for m in members)
        listed = sorted(({k: m[k] for k in ("asset", "price", "cap_usd", "change_24h_pct")} for m in members),
                        key=lambda m: (m["cap_usd"] is None, -(m["cap_usd"] or 0.0), m["asset"]))
        moved = [m for m in listed if m["change_24h_pct"] is not None]
        out[sector] = {
            "sector": sector, "name": names.get(sector, sector), "cap_usd": cap, "cap_24h_ago_usd": ago_cap,
            "change_24h_pct": _pct(cap, ago_cap) if priced else None, "volume_24h_usd": volume,
            "volume_prev_24h_usd": volume_prev, "volume_change_24h_pct": _pct(volume, volume_prev),
            "members": listed,
            "top_gainers": sorted(moved, key=lambda m: (-m["change_24h_pct"], m["asset"]))[:5],
            "top_losers": sorted(moved, key=lambda m: (m["change_24h_pct"], m["asset"]))[:5],
            "ts": now,
        }
    return out


CANDLE_MS = {"1m": 60_000, "1h": 3_600_000, "1d": 86_400_000}


def candles(bars: Sequence[TradeBar], universe: dict[str, AssetInfo],
            now_ms: int | None = None) -> dict[str, dict[str, Any]]:
    """The latest (forming) candle of every asset price and every sector cap series."""
    held = _held(bars, universe, now_ms)
    out: dict[str, dict[str, Any]] = {}
    if not held:
        return out
    for asset, mine in held.items():
        own_now = mine[-1].ts_last
        for interval, ms in CANDLE_MS.items():
            start = own_now // ms * ms
            inside = [b for b in mine if start <= b.minute < start + ms]
            first = min(inside, key=lambda b: (b.ts_first, b.id))
            out[f"{asset}:{interval}"] = {
                "series": asset, "interval": interval, "open_time": start, "open": first.open,
                "high": max(b.high for b in inside), "low": min(b.low for b in inside), "close": inside[-1].close,
                "closed": False, "ts": own_now}
    now = max(b.ts_last for bs in held.values() for b in bs)
    sectors = {"total": sorted(universe)}
    for asset, info in universe.items():
        for sector in info.sectors:
            sectors.setdefault(sector, []).append(asset)
    ring_first = minute_of(now) - (RING_MINUTES - 1) * MINUTE_MS
    closes = {asset: _closes_by_minute(mine) for asset, mine in held.items()}
    for sector, assets in sectors.items():
        for interval, ms in CANDLE_MS.items():
            start = now // ms * ms
            points = []
            for minute in range(max(start, ring_first), minute_of(now) + MINUTE_MS, MINUTE_MS):
                total, priced = 0.0, False
                for asset in assets:
                    price = _last_close(closes[asset], minute) if asset in closes else None
                    if price is None and universe[asset].stablecoin:
                        price = 1.0
                    if price is not None:
                        total += price * universe[asset].circulating_supply
                        priced = True
                if priced:
                    points.append(total)
            if points:
                out[f"{sector}:{interval}"] = {
                    "series": sector, "interval": interval, "open_time": start, "open": points[0],
                    "high": max(points), "low": min(points), "close": points[-1], "closed": False, "ts": now}
    return out


def compute(trade_bars_or_trades: Iterable[TradeBar | Trade], liquidations: Iterable[Liquidation],
            assets: Universe | Iterable[AssetInfo | dict[str, Any]], now_ms: int | None = None,
            ) -> dict[str, dict[str, dict[str, Any]]]:
    """Every derived figure from the raw events (``now_ms``: ignore events after it)."""
    universe = _universe(assets)
    names = assets.sector_names if isinstance(assets, Universe) else {}
    bars = [trade_as_bar(e) if isinstance(e, Trade) else e for e in trade_bars_or_trades]
    liqs = list(liquidations)
    return {
        "asset-stats": asset_stats(bars, universe, now_ms),
        "sector-caps": sector_caps(bars, universe, names, now_ms),
        "liquidation-totals": liquidation_totals(liqs, universe, now_ms),
        "candles": candles(bars, universe, now_ms),
    }
