"""Incremental indicators against TA-Lib (the oracle) and talipp on their own reference series.

reference_series.json holds the close series of TA-Lib's regression tests (BSD-3-Clause) and of
talipp's tests (MIT) with the values those suites publish; see its ``source`` fields.

Tolerance "1e-9 relative": relative to the value itself, except for values that are differences
and may be ~0: the MACD fields (differences of price-level EMAs) are compared relative to the
series level, dist_smaN_pct = (close/SMA - 1) x 100 relative to 100 (1e-9 on the ratio).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.processor.indicators import FIELDS, SMA_PERIODS, SeriesIndicators

talib = pytest.importorskip("talib")
talipp_indicators = pytest.importorskip("talipp.indicators")

REFERENCE = json.loads((Path(__file__).parent / "reference_series.json").read_text())
REL = 1e-9
LONG_WALK_DIGEST = "41fe662081c8b083915ce3be82fe6da8077e346b4cdb01cc6aab0301944ab3f3"  # see its test
MACD_FIELDS = ("macd", "macd_signal", "macd_hist")
# Index of the first value TA-Lib emits for each field (lookback).
FIRST_INDEX = {
    "sma20": 19, "sma50": 49, "sma100": 99, "sma200": 199, "ema12": 11, "ema26": 25, "rsi14": 14,
    "macd": 33, "macd_signal": 33, "macd_hist": 33,
    "dist_sma20_pct": 19, "dist_sma50_pct": 49, "dist_sma100_pct": 99, "dist_sma200_pct": 199,
}


def talib_reference(closes: list[float]) -> dict[str, np.ndarray]:
    x = np.asarray(closes, dtype=float)
    ref: dict[str, np.ndarray] = {}
    for period in (20, 50, 100, 200):
        sma = talib.SMA(x, timeperiod=period)
        ref[f"sma{period}"] = sma
        ref[f"dist_sma{period}_pct"] = (x / sma - 1.0) * 100.0
    ref["ema12"], ref["ema26"] = talib.EMA(x, timeperiod=12), talib.EMA(x, timeperiod=26)
    ref["rsi14"] = talib.RSI(x, timeperiod=14)
    ref["macd"], ref["macd_signal"], ref["macd_hist"] = talib.MACD(x, 12, 26, 9)
    return ref


def run(closes: list[float]) -> list[dict[str, float | None]]:
    ind = SeriesIndicators()
    return [ind.close(c) for c in closes]


def assert_matches(outputs: list[dict[str, float | None]], ref: dict[str, np.ndarray],
                   closes: list[float]) -> None:
    level = float(np.mean(np.abs(closes)))
    for field in FIELDS:
        for i, out in enumerate(outputs):
            expected, got = ref[field][i], out[field]
            if math.isnan(expected):
                assert got is None, f"{field}[{i}] should be None (TA-Lib has no value), got {got}"
                continue
            assert got is not None, f"{field}[{i}] is None, TA-Lib has {expected}"
            scale = level if field in MACD_FIELDS else 100.0 if field.startswith("dist_") else abs(expected)
            assert abs(got - expected) <= REL * max(scale, 1e-300), (field, i, got, expected)


@pytest.mark.parametrize("name", ["ta_lib", "talipp"])
def test_equal_to_talib_on_reference_series(name: str) -> None:
    closes = REFERENCE[name]["close"]
    assert_matches(run(closes), talib_reference(closes), closes)


def test_talib_published_values() -> None:
    data = REFERENCE["ta_lib"]
    outputs = run(data["close"])
    for field, points in data["published"].items():
        tol = data["published_abs_tolerance"][field]
        for index, value in points.items():
            got = outputs[int(index)][field]
            assert got is not None and abs(got - value) <= tol, (field, index, got, value)


def test_talipp_oracle_and_published_values() -> None:
    """SMA/EMA/RSI equal talipp; talipp's MACD line is EMA12 - EMA26 (TA-Lib aligns the fast EMA)."""
    data = REFERENCE["talipp"]
    closes = data["close"] + REFERENCE["ta_lib"]["close"]  # long enough for SMA(200)
    outputs = run(closes)
    oracles = {f"sma{p}": talipp_indicators.SMA(p, closes) for p in (20, 50, 100, 200)}
    oracles |= {f"ema{p}": talipp_indicators.EMA(p, closes) for p in (12, 26)}
    oracles["rsi14"] = talipp_indicators.RSI(14, closes)
    for field, oracle in oracles.items():
        for i, expected in enumerate(oracle):
            got = outputs[i][field]
            if expected is None:
                assert got is None, (field, i)
            else:
                assert got is not None and abs(got - expected) <= REL * abs(expected), (field, i, got, expected)
    for i, expected in enumerate(talipp_indicators.MACD(12, 26, 9, closes)):
        if expected is not None:
            ema12, ema26 = outputs[i]["ema12"], outputs[i]["ema26"]
            assert ema12 is not None and ema26 is not None
            assert abs((ema12 - ema26) - expected.macd) <= REL * 10.0
    talipp_outputs = run(data["close"])
    for field, points in data["published"].items():
        tol = data["published_abs_tolerance"][field]
        for index, value in points.items():
            out = talipp_outputs[int(index)]
            got = out["sma20"] if field == "sma20" else out["ema12"] - out["ema26"]  # type: ignore[operator]
            assert got is not None and abs(got - value) <= tol, (field, index, got, value)


def test_none_prefix_lengths() -> None:
    outputs = run([100.0 + math.sin(i) for i in range(230)])
    for field, first in FIRST_INDEX.items():
        assert [o[field] is None for o in outputs] == [i < first for i in range(230)], field


def test_long_series_stays_exact() -> None:
    """Running sums on a 20k-candle series of trillion-scale values stay within 1e-9 of exact sums."""
    rng = random.Random(7)
    closes, x = [], 3.4e12
    for _ in range(20_000):
        x *= 1 + rng.gauss(0, 0.03)
        closes.append(x)
    ind = SeriesIndicators()
    for i, c in enumerate(closes):
        out = ind.close(c)
        if i % 997 == 0 or i == len(closes) - 1:
            for period in (20, 50, 100, 200):
                exact = math.fsum(closes[max(0, i - period + 1): i + 1]) / period
                got = out[f"sma{period}"]
                if i >= period - 1:
                    assert got is not None and abs(got - exact) <= REL * exact


cents = st.integers(min_value=100, max_value=10_000_000).map(lambda c: c / 100.0)


@st.composite
def random_walks(draw: st.DrawFn) -> list[float]:
    """Long cent-rounded random walks with flat stretches (lengths up to 300 reach every indicator).

    Cents keep every non-zero change >= 0.01, so TA-Lib's absolute 1e-8 "zero" test and ours
    (exact zero) agree on these series.
    """
    rng = random.Random(draw(st.integers(min_value=0, max_value=2**32)))
    n, flat = draw(st.integers(min_value=1, max_value=300)), draw(st.floats(min_value=0.0, max_value=0.6))
    x, out = draw(cents), []
    for _ in range(n):
        if rng.random() >= flat:
            x = max(0.01, round(x * (1 + rng.gauss(0, 0.03)), 2))
        out.append(x)
    return out


prices = st.one_of(st.lists(cents, min_size=1, max_size=60), random_walks())


@settings(max_examples=40, deadline=None)
@given(prices)
def test_incremental_equals_batch(closes: list[float]) -> None:
    """Streaming values at every index equal TA-Lib's batch over the whole series."""
    assert_matches(run(closes), talib_reference(closes), closes)


@settings(max_examples=40, deadline=None)
@given(prices, st.data())
def test_state_round_trip_mid_series(closes: list[float], data: Any) -> None:
    split = data.draw(st.integers(min_value=0, max_value=len(closes)))
    whole = run(closes)
    first = SeriesIndicators()
    for c in closes[:split]:
        first.close(c)
    resumed = SeriesIndicators.from_state(json.loads(json.dumps(first.state())))
    assert resumed.state() == first.state()
    assert [resumed.close(c) for c in closes[split:]] == whole[split:]


@settings(max_examples=40, deadline=None)
@given(prices, st.lists(cents, min_size=1, max_size=5))
def test_preview_is_close_without_commit(closes: list[float], forming: list[float]) -> None:
    ind = SeriesIndicators()
    for c in closes:
        ind.close(c)
    before = json.dumps(ind.state())
    previews = [ind.preview(v) for v in forming]
    assert json.dumps(ind.state()) == before
    for value, preview in zip(forming, previews, strict=True):
        copy = SeriesIndicators.from_state(json.loads(before))
        assert copy.close(value) == preview


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf])
def test_rejects_bad_close_without_changing_state(bad: float) -> None:
    ind = SeriesIndicators()
    for c in (1.0, 2.0, 3.0):
        ind.close(c)
    before = ind.state()
    with pytest.raises(ValueError):
        ind.close(bad)
    with pytest.raises(ValueError):
        ind.preview(bad)
    assert ind.state() == before


def long_walk(n: int = 1500, seed: int = 11) -> list[float]:
    """Cent-rounded random walk: flat stretches (also at the start), big jumps, calm and wild parts.

    Cents keep every non-zero change >= 0.01 (TA-Lib's "zero" and ours agree, see random_walks).
    """
    rng, x, out = random.Random(seed), 100.0, [100.0] * 30
    while len(out) < n:
        regime = rng.random()
        if regime < 0.25:
            out += [x] * rng.randint(5, 40)
            continue
        if regime < 0.4:
            x = max(1.0, round(x * rng.choice((8.0, 0.125, 3.0, 0.5)), 2))
        sigma = 0.002 if regime < 0.7 else 0.05
        for _ in range(rng.randint(5, 80)):
            x = max(1.0, round(x * (1 + rng.gauss(0, sigma)), 2))
            out.append(x)
    return out[:n]


def test_long_walk_equals_batch_across_round_trips_and_previews() -> None:
    """1500 closes (seven re-anchorings): every close equals TA-Lib's batch; a forming candle's preview
    equals the close that follows it; JSON state round trips (mid-anchor and on an anchor) change
    nothing, to the bit."""
    closes = long_walk()
    ind, outputs = SeriesIndicators(), []
    for i, c in enumerate(closes):
        before = json.dumps(ind.state())
        for forming in (c * 0.97, c * 1.03):
            ind.preview(forming)
        preview = ind.preview(c)
        assert json.dumps(ind.state()) == before
        if i in (777, 1000):
            ind = SeriesIndicators.from_state(json.loads(json.dumps(ind.state())))
            assert json.dumps(ind.state()) == before
        outputs.append(ind.close(c))
        assert outputs[-1] == preview, i
    assert_matches(outputs, talib_reference(closes), closes)
    assert outputs == run(closes)


def _digest(closes: list[float]) -> str:
    """SHA-256 of every close's and preview's values and of the JSON state after every close."""
    ind, h = SeriesIndicators(), hashlib.sha256()
    for c in closes:
        for v in (ind.preview(c * 1.01), ind.close(c)):
            h.update(json.dumps(v).encode())
        h.update(json.dumps(ind.state()).encode())
    return h.hexdigest()


def test_values_and_states_are_the_recorded_ones_to_the_bit() -> None:
    """Indicators and states are bit-identical to those the processor has always produced.

    Recorded with the implementation of 2026-12-08 (before the per-candle path was written out):
    consumers see the same values after an upgrade, and restarted workers continue the states the
    old code wrote. Any change of arithmetic, key order or state format shows here.
    """
    assert _digest(long_walk()) == LONG_WALK_DIGEST


def _jumpy_series(seed: int, n: int = 500) -> list[float]:
    """A random walk with falls and rises of 3 to 12 orders of magnitude (never a market's)."""
    rng, price, out = random.Random(seed), 10 ** random.Random(seed).uniform(0, 9), []
    for _ in range(n):
        r = rng.random()
        price *= 10 ** -rng.uniform(3, 12) if r < 0.02 else 10 ** rng.uniform(3, 12) if r < 0.04 else rng.uniform(0.5, 1.5)
        out.append(min(max(price, 1e-300), 1e9))
    return out


@pytest.mark.parametrize("seed", [0, 5, 10, 32, 39])
def test_falls_by_many_orders_of_magnitude_keep_every_sma_exact(seed: int) -> None:
    """Once the large closes leave a window, what a running sum holds of them is its rounding error:
    such series gave SMAs of 0 or below (then a ZeroDivisionError on every close) or off by
    orders of magnitude. A sum far below its recent peak is recomputed from the window instead."""
    closes = _jumpy_series(seed)
    ind = SeriesIndicators()
    for n, x in enumerate(closes, 1):
        values = ind.close(x)
        ind.preview(x * 1.5)
        for period in SMA_PERIODS:
            if n >= period:
                exact = math.fsum(closes[n - period:n]) / period
                assert values[f"sma{period}"] == pytest.approx(exact, rel=1e-9, abs=0), (n, period)
