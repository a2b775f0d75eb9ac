"""Indicator update cost: incremental vs recomputing the batch on every candle, side by side.

    python -m bench.indicators [--candles 5000] [--history 300]

All runs process the same random-walk closes in one process:
- incremental: ``SeriesIndicators.close`` per candle (what the processor does), and ``preview``;
- the processor's whole per-candle path: ``SignalEngine.on_candle`` of closed and of forming 1m
  candles (1m raises no alert by default);
- batch per candle, pure Python: a fresh ``SeriesIndicators`` folded over the trailing
  ``--history`` closes at every candle (same code, recomputed from scratch);
- batch per candle, TA-Lib (C): SMA x4, EMA x2, RSI, MACD over the trailing history (if installed);
- talipp incremental: SMA x4, EMA x2, RSI, MACD ``add`` per candle (if installed).
Prints candles per second, microseconds per candle (CPU time, best of 3) and the incremental/other
ratios. Not a test: figures vary with load.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

from services.processor.indicators import SMA_PERIODS, SeriesIndicators
from services.processor.settings import ProcessorSettings
from services.processor.signals import SignalEngine

MINUTE = 60_000


def closes(n: int, seed: int = 1) -> list[float]:
    rng, x, out = random.Random(seed), 3.4e12, []
    for _ in range(n):
        x *= 1 + rng.gauss(0, 0.02)
        out.append(x)
    return out


def rate(run: Callable[[list[float]], None], data: list[float]) -> float:
    """Candles per second of ``run`` over ``data`` (best of 3, CPU time: the machine may be shared)."""
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        run(data)
        best = min(best, time.process_time() - start)
    return len(data) / best


def incremental(data: list[float]) -> None:
    ind = SeriesIndicators()
    for x in data:
        ind.close(x)


def previews(data: list[float]) -> None:
    ind = SeriesIndicators()
    for x in data[:300]:
        ind.close(x)
    for x in data:
        ind.preview(x)


def candles(data: list[float], closed: bool) -> list[dict[str, object]]:
    return [{"series": "total", "interval": "1m", "open_time": i * MINUTE, "open": x, "high": x, "low": x,
             "close": x, "closed": closed, "ts": i * MINUTE + MINUTE - 1} for i, x in enumerate(data)]


def on_candle(data: list[float], closed: bool) -> Callable[[list[float]], None]:
    """``SignalEngine.on_candle`` per candle of ``data``; forming candles follow 300 closed ones."""
    history, feed = candles(data[:300], True), candles(data, closed)

    def run(_: list[float]) -> None:
        engine = SignalEngine(ProcessorSettings())
        if not closed:
            for candle in history:
                engine.on_candle(candle)
        for candle in feed:
            engine.on_candle(candle)
    return run


def batch_python(history: int) -> Callable[[list[float]], None]:
    def run(data: list[float]) -> None:
        for i in range(1, len(data) + 1):
            ind = SeriesIndicators()
            for x in data[max(0, i - history):i]:
                ind.close(x)
    return run


def batch_talib(history: int) -> Callable[[list[float]], None] | None:
    try:
        import numpy as np
        import talib
    except ImportError:
        return None

    def run(data: list[float]) -> None:
        arr = np.asarray(data, dtype=float)
        for i in range(1, len(arr) + 1):
            window = arr[max(0, i - history):i]
            for period in SMA_PERIODS:
                talib.SMA(window, timeperiod=period)
            talib.EMA(window, timeperiod=12)
            talib.EMA(window, timeperiod=26)
            talib.RSI(window, timeperiod=14)
            talib.MACD(window, 12, 26, 9)
    return run


def talipp_incremental() -> Callable[[list[float]], None] | None:
    try:
        from talipp.indicators import EMA, MACD, RSI, SMA
    except ImportError:
        return None

    def run(data: list[float]) -> None:
        indicators = [SMA(p) for p in SMA_PERIODS] + [EMA(12), EMA(26), RSI(14), MACD(12, 26, 9)]
        for x in data:
            for ind in indicators:
                ind.add(x)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candles", type=int, default=5000)
    parser.add_argument("--history", type=int, default=300, help="closes recomputed per candle by the batch runs")
    args = parser.parse_args()
    data = closes(args.candles)
    batch_data = data[: max(args.candles // 10, args.history + 1)]  # batch runs are slow: fewer candles

    base = rate(incremental, data)
    rows: list[tuple[str, float | None]] = [
        ("incremental SeriesIndicators.close", base),
        ("incremental SeriesIndicators.preview", rate(previews, data)),
        ("SignalEngine.on_candle, closed 1m", rate(on_candle(data, True), data)),
        ("SignalEngine.on_candle, forming 1m", rate(on_candle(data, False), data)),
        (f"batch per candle, pure Python ({args.history} closes)", rate(batch_python(args.history), batch_data)),
    ]
    talib_run = batch_talib(args.history)
    rows.append((f"batch per candle, TA-Lib C ({args.history} closes)",
                 rate(talib_run, batch_data) if talib_run else None))
    talipp_run = talipp_incremental()
    rows.append(("talipp incremental (add)", rate(talipp_run, data) if talipp_run else None))

    print(f"{'method':<52} {'candles/s':>12} {'µs/candle':>10} {'incremental x':>14}")
    for name, value in rows:
        if value is None:
            print(f"{name:<52} {'not installed':>12}")
        else:
            print(f"{name:<52} {value:>12,.0f} {1e6 / value:>10.2f} {base / value:>13.1f}x")


if __name__ == "__main__":
    main()
