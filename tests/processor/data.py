"""Deterministic synthetic market data for the processor's integration tests and benchmarks."""

from __future__ import annotations

import random

from services.common.events import Liquidation, TradeBar
from services.processor.timeutil import MINUTE_MS
from tests.processor.helpers import T0, bar, liquidation

ASSETS = ("BTC", "ETH", "SOL", "BNB", "XRP", "RENDER", "ADA", "AVAX")
EXCHANGES = ("binance-usdm", "okx", "bybit")


def market(seed: int, bars_per_asset: int, minutes: int, liquidations: int,
           assets: tuple[str, ...] = ASSETS) -> tuple[list[TradeBar], list[Liquidation]]:
    """Bars spread over ``minutes`` of event time per asset (random walk prices), and liquidations."""
    rng = random.Random(seed)
    bars: list[TradeBar] = []
    for a_index, asset in enumerate(assets):
        price = 10.0 * (a_index + 1)
        for i in range(bars_per_asset):
            ts = T0 + (i * minutes * MINUTE_MS) // bars_per_asset + rng.randrange(1000)
            price *= 1 + rng.uniform(-0.01, 0.01)
            hi, lo = price * 1.002, price * 0.998
            bars.append(bar(asset, ts, ts + rng.randrange(200), (price, hi, lo, price * 1.001), rng.uniform(1e3, 1e5),
                            count=rng.randrange(1, 40), exchange=rng.choice(EXCHANGES), seq=i * 1000))
    bars.sort(key=lambda b: b.ts_last)
    liqs = [liquidation(rng.choice(assets), T0 + rng.randrange(minutes * MINUTE_MS), rng.choice(("long", "short")),
                        rng.uniform(1e3, 1e6), rng.uniform(1, 100), exchange=rng.choice(EXCHANGES), seq=i)
            for i in range(liquidations)]
    liqs.sort(key=lambda q: q.ts)
    return bars, liqs
