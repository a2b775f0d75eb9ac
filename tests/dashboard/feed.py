"""Realistic derived records for the dashboard tests, in the processor's value schemas.

They stand in for the processor's output around the 2025-01-27 selloff (figures from
scenario/article-figures.json): the gateway serves them like any other derived record.
The SMA/RSI columns are only plausible chart inputs here; the processor's own indicator
code is what the processor tests check.
"""

from __future__ import annotations

import random
from typing import Any

from services.common import topics

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
END_DAY = 1_737_936_000_000  # 2025-01-27T00:00:00Z: the selloff day's daily candle
NOW = END_DAY + 23 * HOUR_MS + 59 * 60_000
DAYS = 130
FIRST_DAY = END_DAY - (DAYS - 1) * DAY_MS

Record = tuple[str, str, dict[str, Any]]

AI_MEMBERS: list[tuple[str, float, float, float]] = [
    # asset, 24 h change %, market cap USD, price USD
    ("NEAR", -11.4, 5.71e9, 4.81), ("FET", -10.41, 3.26e9, 1.16), ("RENDER", -14.6, 3.08e9, 5.96),
    ("TAO", -9.8, 3.41e9, 415.2), ("VIRTUAL", -12.9, 2.18e9, 2.18), ("GRT", -11.41, 1.81e9, 0.1893),
    ("AI16Z", -8.2, 1.2e9, 1.09), ("GPU", -27.3, 0.148e9, 1.57),
]


def _closes() -> list[float]:
    """Daily total-cap closes: the Q4 2024 rally, the 2025-01-20 high, the 2025-01-27 drop."""
    rng = random.Random(27)
    closes = []
    for day in range(DAYS):
        if day < 90:
            base = 2.15e12 + (3.55e12 - 2.15e12) * day / 90
        else:
            base = 3.45e12 + 0.08e12 * ((day % 7) - 3) / 3
        closes.append(base * (1 + rng.uniform(-0.018, 0.018)))
    closes[-8] = 3.69e12  # 2025-01-20 local high
    closes[-2] = 3.611e12
    closes[-1] = 3.38e12
    return closes


def _sma(values: list[float], end: int, n: int) -> float | None:
    return sum(values[end - n + 1:end + 1]) / n if end + 1 >= n else None


def _rsi(values: list[float], end: int, n: int = 14) -> float | None:
    """Wilder RSI over the closes up to ``end`` (plain loop; test data only)."""
    if end < n:
        return None
    gains = [max(values[i] - values[i - 1], 0.0) for i in range(1, end + 1)]
    losses = [max(values[i - 1] - values[i], 0.0) for i in range(1, end + 1)]
    avg_gain, avg_loss = sum(gains[:n]) / n, sum(losses[:n]) / n
    for g, loss in zip(gains[n:], losses[n:], strict=True):
        avg_gain = (avg_gain * (n - 1) + g) / n
        avg_loss = (avg_loss * (n - 1) + loss) / n
    return 100.0 if avg_loss == 0 else 100 - 100 / (1 + avg_gain / avg_loss)


def candle_and_indicators(closes: list[float], index: int, closed: bool, ts: int) -> list[Record]:
    open_time = FIRST_DAY + index * DAY_MS
    close = closes[index]
    opened = closes[index - 1] if index else close
    candle = {"series": "total", "interval": "1d", "open_time": open_time, "open": opened,
              "high": max(opened, close) * 1.012, "low": min(opened, close) * 0.987, "close": close,
              "closed": closed, "ts": ts, "ts_emit": ts}
    indicators = {"series": "total", "interval": "1d", "open_time": open_time, "close": close,
                  "closed": closed, "sma50": _sma(closes, index, 50), "sma100": _sma(closes, index, 100),
                  "rsi14": _rsi(closes, index), "ts": ts, "ts_emit": ts}
    return [(topics.CANDLES.name, "total:1d", candle), (topics.INDICATORS.name, "total:1d", indicators)]


def chart_records() -> list[Record]:
    """Every daily candle and its indicators, then three updates of the forming 2025-01-27 candle."""
    closes = _closes()
    records: list[Record] = []
    for index in range(len(closes) - 1):
        records += candle_and_indicators(closes, index, True, END_DAY - (len(closes) - 2 - index) * DAY_MS - 1)
    for step, fraction in enumerate((0.3, 0.7, 1.0)):
        forming = closes[:-1] + [closes[-2] + (closes[-1] - closes[-2]) * fraction]
        records += candle_and_indicators(forming, len(forming) - 1, False, END_DAY + (step + 1) * 7 * HOUR_MS)
    return records


def sector(sector_id: str, name: str, cap: float, change: float, volume: float, volume_change: float,
           members: list[tuple[str, float, float, float]], ts: int = NOW) -> Record:
    value = {"sector": sector_id, "name": name, "cap_usd": cap, "cap_24h_ago_usd": cap / (1 + change / 100),
             "change_24h_pct": change, "volume_24h_usd": volume,
             "volume_prev_24h_usd": volume / (1 + volume_change / 100), "volume_change_24h_pct": volume_change,
             "members": [{"asset": a, "change_24h_pct": c, "cap_usd": m, "price": p} for a, c, m, p in members],
             "ts": ts, "ts_emit": ts}
    return topics.SECTOR_CAPS.name, sector_id, value


def sector_records(total_cap: float = 3.38e12, ts: int = NOW) -> list[Record]:
    return [
        sector("total", "Total market", total_cap, -6.4, 2.31e11, 61.5,
               [("BTC", -4.1, 2.02e12, 101_960.0), ("ETH", -7.9, 3.78e11, 3_140.5)], ts),
        sector("ai", "AI", 4.25e10, -10.6, 3.41e9, 39.2, AI_MEMBERS, ts),
        sector("l1", "Layer 1", 2.61e12, -6.1, 1.44e11, 58.0,
               [("BTC", -4.1, 2.02e12, 101_960.0), ("ETH", -7.9, 3.78e11, 3_140.5), ("SOL", -8.7, 1.1e11, 231.4)],
               ts),
        sector("defi", "DeFi", 1.18e11, -8.9, 9.6e9, 44.1, [("UNI", -9.4, 8.1e9, 13.5), ("AAVE", -7.3, 5.2e9, 343.0)],
               ts),
        sector("meme", "Meme", 9.9e10, -9.7, 1.52e10, 71.3, [("DOGE", -8.4, 5.1e10, 0.3457), ("PEPE", -12.2, 6.7e9,
                                                                                            0.00001593)], ts),
        sector("l2", "Layer 2", 2.4e10, -9.1, 2.1e9, 35.4, [("ARB", -9.9, 3.2e9, 0.7456), ("OP", -9.3, 2.4e9, 1.78)],
               ts),
    ]


def liquidation(window: str, scope: str, long_usd: float, short_usd: float, ts: int = NOW,
                largest: tuple[float, str, str, str, float] | None = None) -> Record:
    big = None
    if largest is not None:
        notional, side, exchange, instrument, price = largest
        big = {"notional_usd": notional, "liquidated_side": side, "exchange": exchange,
               "instrument": instrument, "price": price, "ts": ts - 5 * HOUR_MS}
    value = {"window": window, "scope": scope, "long_usd": long_usd, "short_usd": short_usd,
             "total_usd": long_usd + short_usd, "long_count": int(long_usd / 40_000),
             "short_count": int(short_usd / 40_000), "count": int(long_usd / 40_000) + int(short_usd / 40_000),
             "largest": big, "ts": ts, "ts_emit": ts}
    return topics.LIQUIDATION_TOTALS.name, f"{window}:{scope}", value


def liquidation_records(long_24h: float = 7.94e8, ts: int = NOW) -> list[Record]:
    btc = (2.07e7, "long", "binance", "BTC-USDT-PERP", 98_210.0)
    eth = (8.4e6, "long", "bybit", "ETH-USDT-PERP", 3_071.2)
    sol = (3.9e6, "long", "okx", "SOL-USDT-SWAP", 224.6)
    short = (2.2e6, "short", "binance", "XRP-USDT-PERP", 3.12)
    records = [
        liquidation("1h", "all", 4.2e7, 6.1e6, ts, sol),
        liquidation("4h", "all", 2.6e8, 1.8e7, ts, eth),
        liquidation("12h", "all", 6.1e8, 4.1e7, ts, btc),
        liquidation("24h", "all", long_24h, 5.9e7, ts, btc),
        liquidation("24h", "exchange:binance", 3.8e8, 3.0e7, ts, btc),
        liquidation("24h", "exchange:bybit", 2.46e8, 1.9e7, ts, eth),
        liquidation("24h", "exchange:okx", 1.68e8, 1.0e7, ts, sol),
    ]
    assets = [("BTC", 2.4795e8, 1.4e7, btc), ("ETH", 1.8e8, 1.2e7, eth), ("SOL", 9.6e7, 8.0e6, sol),
              ("XRP", 5.2e7, 4.0e6, short), ("DOGE", 4.1e7, 3.0e6, None), ("RENDER", 1.8e7, 9.0e5, None),
              ("SUI", 1.6e7, 1.1e6, None), ("ADA", 1.3e7, 8.0e5, None), ("LINK", 1.1e7, 7.0e5, None),
              ("AVAX", 9.5e6, 6.0e5, None), ("PEPE", 8.1e6, 5.0e5, None), ("NEAR", 6.3e6, 3.0e5, None)]
    records += [liquidation("24h", f"asset:{a}", lo, sh, ts, big) for a, lo, sh, big in assets]
    return records


def alert(kind: str, subject: str, message: str, ts: int, **values: float) -> Record:
    value = {"kind": kind, "subject": subject, "message": message, "values": values,
             "id": f"{kind}:{subject}:{ts}", "ts": ts, "ts_emit": ts}
    return topics.ALERTS.name, kind, value


def alert_records() -> list[Record]:
    closes = _closes()
    rsi = _rsi(closes, len(closes) - 1) or 50.0
    return [
        alert("local_high", "total:1d", "Total market cap local high $3.69T", END_DAY - 7 * DAY_MS, level=3.69e12),
        alert("volume_surge", "ai", "AI sector 24h volume +39.2% vs the previous 24h", END_DAY + 9 * HOUR_MS,
              change_pct=39.2),
        alert("liquidation_cascade", "24h:all", "Long liquidations $794.0M (93% of $853.0M) in 24h",
              END_DAY + 14 * HOUR_MS, long_usd=7.94e8),
        alert("sector_drawdown", "ai", "AI sector −10.6% in 24h ($47.54B → $42.50B)", END_DAY + 16 * HOUR_MS,
              change_pct=-10.6),
        alert("rsi_cross", "total:1d", f"RSI(14) of total market cap crossed below 50 ({rsi:.1f})",
              END_DAY + 20 * HOUR_MS, rsi14=rsi),
    ]


def initial_records() -> list[Record]:
    return chart_records() + sector_records() + liquidation_records() + alert_records()


def next_day_records() -> list[Record]:
    """What the processor would emit next: 2025-01-27 closes, 2025-01-28 forms, figures move on."""
    closes = _closes() + [3.43e12]
    ts = NOW + 2 * HOUR_MS
    records = candle_and_indicators(closes[:-1], len(closes) - 2, True, END_DAY + DAY_MS - 1)
    records += candle_and_indicators(closes, len(closes) - 1, False, ts)
    records += sector_records(total_cap=3.43e12, ts=ts)
    records += liquidation_records(long_24h=8.12e8, ts=ts)
    records.append(alert("support_resistance", "total:1d", "Total market cap holds above $3.20T support",
                         ts, level=3.2e12))
    return records
