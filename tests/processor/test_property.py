"""Property tests: on random streams (shuffled within the lateness, duplicated, bursty, with a
restart from the tables in the middle) the streaming stages end with the oracle's numbers."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.common.events import Liquidation, TradeBar
from services.processor.reference import bundled_universe
from services.processor.timeutil import MINUTE_MS
from tests import oracle
from tests.processor.helpers import T0, bar, differences, liquidation
from tests.processor.streaming import Pipeline

ASSETS = ("BTC", "ETH", "SOL")
EXCHANGES = ("binance-usdm", "okx", "bybit")
SPAN_MS = 3 * 1_440 * MINUTE_MS      # three days: windows roll and buckets get evicted
LATENESS_MS = 30 * 60_000            # shuffled within 30 minutes (well inside the ring)


@st.composite
def bar_streams(draw: st.DrawFn) -> list[TradeBar]:
    n = draw(st.integers(1, 120))
    bars = []
    for i in range(n):
        asset = draw(st.sampled_from(ASSETS))
        burst = draw(st.booleans())
        ts = T0 + (draw(st.integers(0, 40)) * 1_000 if burst else draw(st.integers(0, SPAN_MS)))
        ts_last = min(ts + draw(st.integers(0, 500)), ts // MINUTE_MS * MINUTE_MS + MINUTE_MS - 1)
        lo = draw(st.floats(1, 1_000))
        hi = lo * draw(st.floats(1, 1.1))
        o, c = lo + (hi - lo) * draw(st.floats(0, 1)), lo + (hi - lo) * draw(st.floats(0, 1))
        count = draw(st.integers(1, 50))
        bars.append(bar(asset, ts, ts_last, (o, hi, lo, c), draw(st.floats(1, 1e6)), count=count,
                        exchange=draw(st.sampled_from(EXCHANGES)), seq=i * 100, ts_recv=ts_last + draw(st.integers(0, 9))))
    return bars


@st.composite
def liquidation_streams(draw: st.DrawFn) -> list[Liquidation]:
    n = draw(st.integers(0, 60))
    return [liquidation(draw(st.sampled_from(ASSETS)), T0 + draw(st.integers(0, SPAN_MS)),
                        draw(st.sampled_from(("long", "short"))), draw(st.floats(1, 1e6)), draw(st.floats(1, 1e5)),
                        exchange=draw(st.sampled_from(EXCHANGES)), seq=i) for i in range(n)]


def delivered(events: list, rng: random.Random, ts_of) -> list:  # type: ignore[no-untyped-def]
    """Event-time order, shuffled within the lateness, with some events delivered twice."""
    jittered = sorted(events, key=lambda e: ts_of(e) + rng.randrange(LATENESS_MS))
    out = []
    for e in jittered:
        out.append(e)
        if rng.random() < 0.2:
            out.insert(rng.randrange(len(out)) if rng.random() < 0.5 else len(out), e)
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bars=bar_streams(), liqs=liquidation_streams(), seed=st.integers(0, 2**32), cut=st.floats(0, 1))
def test_streaming_equals_the_oracle(bars: list[TradeBar], liqs: list[Liquidation], seed: int, cut: float) -> None:
    rng = random.Random(seed)
    stream_bars = delivered(bars, rng, lambda b: b.ts_last)
    stream_liqs = delivered(liqs, rng, lambda q: q.ts)
    universe = bundled_universe()
    pipeline = Pipeline(universe)
    i, j = int(len(stream_bars) * cut), int(len(stream_liqs) * cut)
    pipeline.bars(stream_bars[:i])
    pipeline.liqs(stream_liqs[:j])
    pipeline.restart()                                   # a crash: state comes back from the tables only
    pipeline.bars(stream_bars[max(0, i - 3):])           # ...and the last few are redelivered
    pipeline.liqs(stream_liqs[max(0, j - 3):])
    expected = oracle.compute(bars, liqs, universe)
    assert differences(pipeline.asset_stats(), expected["asset-stats"]) == []
    assert differences(pipeline.liquidation_totals(), expected["liquidation-totals"]) == []
    assert differences(pipeline.sector_caps(), expected["sector-caps"]) == []
    assert differences(pipeline.candles(), expected["candles"]) == []
