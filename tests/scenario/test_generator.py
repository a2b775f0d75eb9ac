"""The scenario generator: determinism, exact venue formats (real adapters), bad input, and the
article's figures recomputed in batch from its frames, independent of density."""

from __future__ import annotations

from collections import defaultdict
from itertools import islice

import pytest

from services.ingestor.instruments import load_instruments
from services.scenario.design import build_design
from services.scenario.figures import evaluate_all
from services.scenario.paths import DAY_MINUTES, MINUTE_MS, START_MS
from services.scenario.source import open_scenario
from services.scenario.universe import is_ai
from tests.scenario.batch import Parsed, figures, parse


@pytest.fixture(scope="module")
def week() -> tuple[Parsed, list[str]]:
    """The whole week at a low density with bad input mixed in, parsed by the real adapters."""
    scenario = open_scenario(instruments=load_instruments, density=0.02, seed=11, bad_fraction=0.002, dup_fraction=0.002)
    parsed = parse(scenario.frames())
    return parsed, [f.frame for f in scenario.malformed()]


def test_every_figure_of_the_article_from_the_frames(week: tuple[Parsed, list[str]]) -> None:
    parsed, _ = week
    live = figures(parsed)
    failed = [(v.figure.id, v.live, v.why) for v in evaluate_all(live) if not v.ok]
    assert failed == []
    assert live["local_high_date"] == "2025-01-20"
    assert live["rsi14_total_2025-01-24"] > 50 > live["rsi14_total_2025-01-27"]     # the bearish cross
    assert live["liq_long_24h"] / live["liq_total_24h"] > 0.9                         # cascade of longs
    assert 0 <= live["total_cap"] / live["sma50_total"] - 1 < 0.01                    # testing it from above


def test_exactly_the_malformed_frames_fail_and_duplicates_are_recognised(week: tuple[Parsed, list[str]]) -> None:
    parsed, malformed = week
    assert len(malformed) > 20
    assert sorted(f.frame for f in parsed.bad) == sorted(malformed)
    assert parsed.duplicates > 20


def test_frames_are_in_receipt_order_and_deterministic() -> None:
    def first(seed: int) -> list[tuple[str, str, int]]:
        frames = open_scenario(instruments=load_instruments, density=0.5, seed=seed, start=START_MS, end=START_MS + 30 * MINUTE_MS).frames()
        return [(f.venue, f.frame, f.ts_recv) for f in islice(frames, 3000)]

    a, b, c = first(3), first(3), first(4)
    assert a == b
    assert a != c
    assert [x[2] for x in a] == sorted(x[2] for x in a)
    assert {x[0] for x in a} == {"binance-usdm", "bybit", "okx"}


def test_day_volumes_closes_and_liquidations_do_not_depend_on_density() -> None:
    day = 6   # 2025-01-26, a whole day
    start = START_MS + day * DAY_MINUTES * MINUTE_MS

    def day_totals(density: float) -> tuple[dict[str, float], dict[str, float], float, int]:
        scenario = open_scenario(instruments=load_instruments, density=density, seed=5, start=start, end=start + DAY_MINUTES * MINUTE_MS,
                                 bad_fraction=0.0, dup_fraction=0.0)
        parsed = parse(scenario.frames())
        volume: dict[str, float] = defaultdict(float)
        last: dict[str, tuple[int, float]] = {}
        for t in parsed.trades:
            volume[t.base] += t.notional_usd
            if t.ts >= last.get(t.base, (0, 0.0))[0]:
                last[t.base] = (t.ts, t.price)
        return volume, {k: v[1] for k, v in last.items()}, sum(x.notional_usd for x in parsed.liquidations), \
            len(parsed.trades)

    low_volume, low_close, low_liq, low_count = day_totals(0.02)
    high_volume, high_close, high_liq, high_count = day_totals(0.25)
    assert high_count > 5 * low_count
    assert low_close == high_close
    design = build_design()
    for asset, planned in ((a.asset, design.volumes[a.asset][day]) for a in design.assets):
        assert low_volume[asset] == pytest.approx(planned, rel=1e-6)
        assert high_volume[asset] == pytest.approx(planned, rel=1e-6)
        assert low_close[asset] == pytest.approx(design.closes[asset][day + 1], rel=1e-6)
    assert low_liq == pytest.approx(high_liq, rel=1e-9)


def test_prices_are_positive_and_realistic() -> None:
    design = build_design()
    btc = design.closes["BTC"]
    assert all(90_000 < p < 115_000 for p in btc)
    assert all(3_000 < p < 4_000 for p in design.closes["ETH"])
    assert all(p > 0 for closes in design.closes.values() for p in closes)
    assert 1e-6 < design.closes["PEPE"][7] < 1e-4


def test_the_processors_oracle_agrees_with_the_batch(week: tuple[Parsed, list[str]]) -> None:
    from services.processor.reference import bundled_universe
    from tests import oracle

    parsed, _ = week
    live = figures(parsed)
    expected = oracle.compute(parsed.trades, parsed.liquidations, bundled_universe())
    stats, liqs = expected["asset-stats"], expected["liquidation-totals"]
    for asset, figure in (("RENDER", "render_change_24h"), ("NEAR", "near_change_24h"), ("GPU", "gpu_change_24h")):
        assert stats[asset]["change_24h_pct"] == pytest.approx(live[figure], abs=1e-9)
    assert liqs["24h:all"]["long_usd"] == pytest.approx(live["liq_long_24h"], rel=1e-12)
    assert liqs["24h:asset:BTC"]["long_usd"] == pytest.approx(live["liq_btc_long_24h"], rel=1e-12)
    ai = [a for a in stats.values() if "ai" in a["sectors"]]
    assert sum(a["volume_24h_usd"] for a in ai) == pytest.approx(live["ai_volume_24h"], rel=1e-12)
    assert sum(a["market_cap_usd"] for a in ai) == pytest.approx(live["ai_cap"], rel=1e-12)
    sectors = expected["sector-caps"]
    assert sectors["total"]["cap_usd"] == pytest.approx(live["total_cap"], rel=1e-12)
    assert sectors["total"]["change_24h_pct"] == pytest.approx(live["total_cap_change_24h"], abs=1e-9)
    assert sectors["ai"]["volume_change_24h_pct"] == pytest.approx(live["ai_volume_change_24h"], abs=1e-9)


def test_design_caps_match_the_article() -> None:
    design = build_design()
    ai = tuple(a for a in design.assets if is_ai(a))
    assert design.cap(7, ai) == pytest.approx(47.54e9, rel=1e-12)
    assert design.cap(8, ai) == pytest.approx(42.5e9, rel=1e-4)
    assert design.cap(8) == pytest.approx(3.38e12, rel=1e-12)
    assert (design.cap(8) / design.cap(7) - 1) * 100 == pytest.approx(-6.4, abs=1e-9)
    peak = sum(a.circulating_supply * design.peak[a.asset] for a in design.assets) + design.stable_cap
    assert peak == pytest.approx(3.695e12, rel=1e-12)
    assert all(design.peak[a.asset] > max(design.closes[a.asset]) for a in design.assets)
