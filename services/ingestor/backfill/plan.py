"""What a backfill covers and what it publishes (pure): time ranges, bars, candles, cap history.

Time ranges at wall time ``now`` (docs/live.md, "Backfill"):
- 1-minute klines for ``[cutoff - minutes, cutoff)``, where ``cutoff`` is the first minute live
  trades cover (the minute the backfill starts, or an earlier recorded start of live trading):
  they become trade bars on the processor's hot path, so asset prices, 24 h changes and volumes,
  1m/1h/1d candles of assets and caps are built by the processor itself, as from live trades.
- hourly and daily klines for the intervals that *begin before* ``cutoff - minutes`` (the interval
  holding that minute included, complete from the venue): they become closed ``candle-history``
  candles that seed the indicators; the processor's own candle of that same interval (partial,
  built from the bars) is then ignored by the indicators, which only take a newer candle. With
  fewer than a day of minutes that interval may not have closed yet: the history then ends before
  it (only closed candles are history).

Cap history (sector and total series): Σ over members of close × *current* circulating supply, at
each open time, members without a kline at that time left out, stablecoins at 1 USD. Supplies
change over months (unlocks, burns), so older points carry today's supply: an approximation,
documented; highs and lows are sums of the members' highs and lows (bounds, not the true extremes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from services.common.assets import TOTAL
from services.common.clock import DAY_MS, HOUR_MS, MINUTE_MS
from services.ingestor.backfill.klines import INTERVAL_MS, Kline
from services.ingestor.venues.base import Instrument


@dataclass(frozen=True)
class Ranges:
    cutoff: int
    minutes: tuple[int, int]
    hours: tuple[int, int]
    days: tuple[int, int]


def plan_ranges(now: int, minutes: int = 2880, hours: int = 720, days: int = 260,
                live_since: int | None = None) -> Ranges:
    """The three ranges (``[start, end)`` epoch ms) for a backfill at ``now``."""
    cutoff = now - now % MINUTE_MS
    if live_since is not None:
        cutoff = min(cutoff, live_since - live_since % MINUTE_MS)
    first_minute = cutoff - minutes * MINUTE_MS
    hour_end = min(first_minute - first_minute % HOUR_MS + HOUR_MS, cutoff - cutoff % HOUR_MS)
    day_end = min(first_minute - first_minute % DAY_MS + DAY_MS, cutoff - cutoff % DAY_MS)
    return Ranges(cutoff, (first_minute, cutoff), (hour_end - hours * HOUR_MS, hour_end),
                  (day_end - days * DAY_MS, day_end))


def windows(start: int, end: int, step: int) -> list[tuple[int, int]]:
    """``[start, end)`` cut into windows of at most ``step`` ms (both ends aligned by the caller)."""
    return [(t, min(t + step, end)) for t in range(start, end, step)]


def bar(inst: Instrument, k: Kline) -> dict[str, Any] | None:
    """The trade bar of one 1-minute kline (None for a minute without trades). Its id is
    deterministic, so a bar published twice (a resumed backfill) is counted once."""
    count = k.trades if k.trades is not None else 1
    close = inst.unit_price(k.close)
    volume = inst.base_size(k.volume, close)
    if count <= 0 or volume <= 0 or k.quote_volume <= 0:
        return None
    tag = f"kline{k.open_time}"
    last = k.open_time + MINUTE_MS - 1
    return {"id": f"{inst.venue}:{inst.instrument}:{tag}:{tag}:{count}", "exchange": inst.venue,
            "instrument": inst.instrument, "base": inst.base, "quote": inst.quote, "market": inst.market,
            "minute": k.open_time, "count": count, "volume": volume, "notional_usd": k.quote_volume,
            "buy_notional_usd": min(k.taker_buy_quote or 0.0, k.quote_volume),
            "open": inst.unit_price(k.open), "high": inst.unit_price(k.high), "low": inst.unit_price(k.low),
            "close": close, "first_trade_id": tag, "last_trade_id": tag, "ts_first": k.open_time,
            "ts_last": last, "ts_recv": last}


def merge_minutes(bars: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One bar per asset and minute from the venues' bars of that minute, sorted by minute: the
    processor's figures are the same (volumes, notionals and counts add up; high and low are the
    extremes; the close is that of the bar the processor takes the close from, the largest id among
    bars of equal ``ts_last``/``ts_recv``, the open that of the bar it takes a window's open from,
    the smallest id among bars of equal ``ts_first``), from a third of the messages when an
    asset trades on three venues. The id is the asset's and minute's alone (exchange ``backfill``),
    so a minute published again by a resumed run, even from fewer venues, is counted once."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for b in bars:
        groups.setdefault((b["base"], b["minute"]), []).append(b)
    out = []
    for (base, minute), group in sorted(groups.items(), key=lambda item: (item[0][1], item[0][0])):
        last = max(group, key=lambda b: b["id"])
        first = min(group, key=lambda b: b["id"])
        tag = f"kline{minute}"
        count = sum(b["count"] for b in group)
        out.append({**last, "id": f"backfill:{base}:{tag}:{tag}:1", "exchange": "backfill", "count": count,
                    "open": first["open"],
                    "volume": sum(b["volume"] for b in group), "notional_usd": sum(b["notional_usd"] for b in group),
                    "buy_notional_usd": sum(b["buy_notional_usd"] for b in group),
                    "high": max(b["high"] for b in group), "low": min(b["low"] for b in group)})
    return out


def candle(series: str, interval: str, open_time: int, o: float, h: float, low: float, c: float) -> dict[str, Any]:
    end = open_time + INTERVAL_MS[interval] - 1
    return {"series": series, "interval": interval, "open_time": open_time, "open": o, "high": h, "low": low,
            "close": c, "closed": True, "ts": end, "ts_emit": end, "source": "backfill"}


OHLC = tuple[float, float, float, float]


def price_ohlc(inst: Instrument, klines: Iterable[Kline]) -> dict[int, OHLC]:
    return {k.open_time: (inst.unit_price(k.open), inst.unit_price(k.high), inst.unit_price(k.low),
                          inst.unit_price(k.close)) for k in klines}


def history_candles(interval: str, prices: Mapping[str, Mapping[int, OHLC]],
                    assets: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Closed candles of every asset's price and of every sector's (and the total's) cap, oldest
    first per series. ``prices``: asset -> open time -> OHLC; ``assets``: the asset records."""
    out: list[dict[str, Any]] = []
    caps: dict[str, dict[int, list[float]]] = {}
    times = sorted({t for series in prices.values() for t in series})
    for asset in sorted(prices):
        for t, (o, h, low, c) in sorted(prices[asset].items()):
            out.append(candle(asset, interval, t, o, h, low, c))
    for asset, record in sorted(assets.items()):
        supply = float(record.get("circulating_supply") or 0.0)
        series = prices.get(asset)
        if supply <= 0 or (series is None and not record.get("stablecoin")):
            continue
        for sector in (TOTAL, *record.get("sectors", ())):
            sums = caps.setdefault(sector, {})
            for t in times:
                ohlc = series.get(t) if series is not None else (1.0, 1.0, 1.0, 1.0)
                if ohlc is None:
                    continue
                acc = sums.setdefault(t, [0.0, 0.0, 0.0, 0.0])
                for i in range(4):
                    acc[i] += ohlc[i] * supply
    for sector in sorted(caps):
        for t, (o, h, low, c) in sorted(caps[sector].items()):
            out.append(candle(sector, interval, t, o, h, low, c))
    return out


def instruments_for(venue_instruments: Mapping[str, Mapping[str, Instrument]], assets: Iterable[str],
                    usd_quotes: frozenset[str]) -> list[Instrument]:
    """The linear USD-quoted perpetuals the live ingestor trades whose base is a known asset."""
    known = set(assets)
    return [inst for venue in sorted(venue_instruments) for _, inst in sorted(venue_instruments[venue].items())
            if inst.listed and inst.market == "perp" and inst.kind == "linear" and inst.base in known
            and inst.quote in usd_quotes]


def primary(instruments: Iterable[Instrument], venue_order: tuple[str, ...]) -> dict[str, Instrument]:
    """Per asset, the instrument of the first venue in ``venue_order`` that trades it: its hourly and
    daily klines are the asset's price history."""
    rank = {v: i for i, v in enumerate(venue_order)}
    chosen: dict[str, Instrument] = {}
    for inst in sorted(instruments, key=lambda i: (rank.get(i.venue, len(rank)), i.symbol)):
        chosen.setdefault(inst.base, inst)
    return chosen
