"""The oracle: a plain batch recomputation of every emitted figure from raw events.

Written independently of the streaming code (no rings, no incremental state): it shares only the
definitions of docs/semantics.md and the constants of ``timeutil``. Tests and the scenario
acceptance test compare the processor's output topics with :func:`compute`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from services.common.events import Liquidation, Trade, TradeBar
from services.processor.reference import AssetInfo, Universe
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
    unique: dict[str, TradeBar] = {}
    for b in bars:
        if _usable(b.base, b.quote, universe) and (now_ms is None or b.ts_last <= now_ms):
            unique.setdefault(b.id, b)
    by_asset: dict[str, list[TradeBar]] = {}
    for b in unique.values():
        by_asset.setdefault(b.base.upper(), []).append(b)
    out = {}
    for asset, all_bars in by_asset.items():
        now = max(b.ts_last for b in all_bars)
        now_minute = minute_of(now)
        ring_first = now_minute - (RING_MINUTES - 1) * MINUTE_MS
        day_first = now_minute - (DAY_MINUTES - 1) * MINUTE_MS
        prev_first = day_first - DAY_MINUTES * MINUTE_MS
        held = [b for b in all_bars if b.minute >= ring_first]
        day = [b for b in held if b.minute >= day_first]
        prev = [b for b in held if prev_first <= b.minute < day_first]
        earlier = [b for b in held if b.minute < day_first]
        last = max(held, key=lambda b: (b.ts_last, b.ts_recv, b.id))
        first = min(day, key=lambda b: (b.ts_first, b.id)) if day else None
        open_24h = first.open if first else None
        ago = max(earlier, key=lambda b: (b.ts_last, b.ts_recv, b.id)).close if earlier else open_24h
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


def compute(trade_bars_or_trades: Iterable[TradeBar | Trade], liquidations: Iterable[Liquidation],
            assets: Universe | Iterable[AssetInfo | dict[str, Any]], now_ms: int | None = None,
            ) -> dict[str, dict[str, dict[str, Any]]]:
    """Every derived figure from the raw events (``now_ms``: ignore events after it)."""
    universe = _universe(assets)
    bars = [trade_as_bar(e) if isinstance(e, Trade) else e for e in trade_bars_or_trades]
    liqs = list(liquidations)
    return {
        "asset-stats": asset_stats(bars, universe, now_ms),
        "liquidation-totals": liquidation_totals(liqs, universe, now_ms),
    }
