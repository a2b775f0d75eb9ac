"""Incremental technical indicators of one candle series, equal to TA-Lib's defaults.

Every indicator is updated in O(1) per closed candle and its state is plain JSON, so the
processor can keep it in a Faust table. Conventions follow TA-Lib (compatibility "default",
unstable period 0), including where each indicator starts (``None`` before that):

- SMA(n): first value at index n-1. Running sums use Neumaier compensated summation and are
  re-anchored with ``math.fsum`` every ``ANCHOR_EVERY`` closes, so the error stays far below
  1e-9 relative however long the series runs.
- EMA(n): k = 2/(n+1), seeded with the SMA of the first n closes; first value at index n-1.
- RSI(14): Wilder smoothing seeded with the simple averages of the first 14 changes; first
  value at index 14. A window without any change gives 0.0, TA-Lib's value. (TA-Lib tests
  "zero" with an absolute 1e-8, which would zero the RSI of sub-cent assets; we test exact 0.)
- MACD(12,26,9): TA-Lib aligns both EMAs to start at index 25, so its fast EMA is seeded with
  the mean of closes 14..25 (not 0..11 like a stand-alone EMA(12)); the signal line is an
  EMA(9) of the MACD line seeded with the mean of its first 9 values; first output at index 33.
- dist_smaN_pct = (close / SMA(n) - 1) x 100.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

SMA_PERIODS = (20, 50, 100, 200)
EMA_PERIODS = (12, 26)
RSI_PERIOD = 14
MACD_FAST, MACD_SLOW, MACD_SIGNAL = 12, 26, 9
WINDOW = max(SMA_PERIODS)
ANCHOR_EVERY = WINDOW
STATE_VERSION = 1

SMA_KEYS = tuple((f"sma{p}", f"dist_sma{p}_pct") for p in SMA_PERIODS)
EMA_KEYS = tuple(f"ema{p}" for p in EMA_PERIODS)
EMA_K = tuple(2.0 / (p + 1) for p in EMA_PERIODS)
FIELDS = (
    "sma20", "sma50", "sma100", "sma200", "ema12", "ema26", "rsi14", "macd", "macd_signal",
    "macd_hist", "dist_sma20_pct", "dist_sma50_pct", "dist_sma100_pct", "dist_sma200_pct",
)

Values = dict[str, float | None]


def _k(period: int) -> float:
    return 2.0 / (period + 1)


def _neumaier(total: float, comp: float, x: float) -> tuple[float, float]:
    """Add ``x`` to the compensated sum (total, comp)."""
    t = total + x
    if abs(total) >= abs(x):
        comp += (total - t) + x
    else:
        comp += (x - t) + total
    return t, comp


def _ema(prev: float, x: float, k: float) -> float:
    return (x - prev) * k + prev


@dataclass
class _Step:
    """Everything one close changes, computed without touching the series' state."""

    sums: list[list[float]]
    ema: list[float | None]
    gain: float | None
    loss: float | None
    seed_gain: float
    seed_loss: float
    macd_fast: float | None
    signal: float | None
    signal_seed: float
    values: Values


class SeriesIndicators:
    """SMA/EMA/RSI/MACD of one series, fed with closed candles' closes in time order."""

    def __init__(self) -> None:
        self.count = 0
        self.window: deque[float] = deque(maxlen=WINDOW)
        self.sums: list[list[float]] = [[0.0, 0.0] for _ in SMA_PERIODS]
        self.ema: list[float | None] = [None for _ in EMA_PERIODS]
        self.gain: float | None = None  # Wilder average gain, once seeded
        self.loss: float | None = None
        self.seed_gain = 0.0  # sums of the first RSI_PERIOD changes
        self.seed_loss = 0.0
        self.macd_fast: float | None = None  # TA-Lib's MACD-aligned fast EMA
        self.signal: float | None = None
        self.signal_seed = 0.0  # sum of the first MACD_SIGNAL MACD values
        self.last: Values = dict.fromkeys(FIELDS)

    # -- public API -------------------------------------------------------------------------

    def close(self, value: float) -> Values:
        """Commit a closed candle's close and return every indicator at it."""
        x = _checked(value)
        step = self._step(x)
        self.count += 1
        self.window.append(x)
        self.sums, self.ema = step.sums, step.ema
        self.gain, self.loss = step.gain, step.loss
        self.seed_gain, self.seed_loss = step.seed_gain, step.seed_loss
        self.macd_fast, self.signal, self.signal_seed = step.macd_fast, step.signal, step.signal_seed
        if self.count % ANCHOR_EVERY == 0:
            self._reanchor()
        self.last = step.values
        return dict(step.values)

    def preview(self, value: float) -> Values:
        """Indicators as if ``value`` closed now (the forming candle); the state is unchanged."""
        return dict(self._step(_checked(value)).values)

    def state(self) -> dict[str, Any]:
        return {
            "v": STATE_VERSION, "count": self.count, "window": list(self.window),
            "sums": [list(s) for s in self.sums], "ema": list(self.ema),
            "gain": self.gain, "loss": self.loss, "seed_gain": self.seed_gain,
            "seed_loss": self.seed_loss, "macd_fast": self.macd_fast, "signal": self.signal,
            "signal_seed": self.signal_seed, "last": dict(self.last),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SeriesIndicators:
        if state.get("v") != STATE_VERSION:
            raise ValueError(f"unsupported indicator state version {state.get('v')!r}")
        ind = cls()
        ind.count = int(state["count"])
        ind.window.extend(float(x) for x in state["window"])
        ind.sums = [[float(a), float(b)] for a, b in state["sums"]]
        ind.ema = [None if x is None else float(x) for x in state["ema"]]
        ind.gain, ind.loss = state["gain"], state["loss"]
        ind.seed_gain, ind.seed_loss = float(state["seed_gain"]), float(state["seed_loss"])
        ind.macd_fast, ind.signal = state["macd_fast"], state["signal"]
        ind.signal_seed = float(state["signal_seed"])
        ind.last = {f: state["last"].get(f) for f in FIELDS}
        return ind

    # -- internals --------------------------------------------------------------------------

    def _reanchor(self) -> None:
        """Replace the running sums by exact ones (amortised O(1): once per ANCHOR_EVERY)."""
        values = list(self.window)
        for i, period in enumerate(SMA_PERIODS):
            self.sums[i] = [math.fsum(values[-period:]), 0.0]

    def _step(self, x: float) -> _Step:
        n = self.count + 1  # number of closes including x
        index = n - 1
        window = self.window
        values: Values = dict.fromkeys(FIELDS)

        sums: list[list[float]] = []
        for period, (sma_key, dist_key), (total, comp) in zip(SMA_PERIODS, SMA_KEYS, self.sums, strict=True):
            total, comp = _neumaier(total, comp, x)
            if n > period:
                total, comp = _neumaier(total, comp, -window[-period])
            sums.append([total, comp])
            if n >= period:
                sma = (total + comp) / period
                values[sma_key] = sma
                values[dist_key] = (x / sma - 1.0) * 100.0

        ema: list[float | None] = []
        for period, key, k, prev in zip(EMA_PERIODS, EMA_KEYS, EMA_K, self.ema, strict=True):
            if n == period:
                new: float | None = (_sum_newest(window, period - 1) + x) / period
            elif n > period and prev is not None:
                new = _ema(prev, x, k)
            else:
                new = None
            ema.append(new)
            values[key] = new

        gain, loss = self.gain, self.loss
        seed_gain, seed_loss = self.seed_gain, self.seed_loss
        if n >= 2:
            change = x - window[-1]
            up, down = (change, 0.0) if change > 0 else (0.0, -change)
            if index <= RSI_PERIOD:
                seed_gain, seed_loss = seed_gain + up, seed_loss + down
                if index == RSI_PERIOD:
                    gain, loss = seed_gain / RSI_PERIOD, seed_loss / RSI_PERIOD
            elif gain is not None and loss is not None:
                gain = (gain * (RSI_PERIOD - 1) + up) / RSI_PERIOD
                loss = (loss * (RSI_PERIOD - 1) + down) / RSI_PERIOD
            if gain is not None and loss is not None:
                both = gain + loss
                values["rsi14"] = 100.0 * (gain / both) if both != 0.0 else 0.0

        macd_fast, signal, signal_seed = self.macd_fast, self.signal, self.signal_seed
        slow = ema[EMA_PERIODS.index(MACD_SLOW)]
        if n == MACD_SLOW:
            macd_fast = (_sum_newest(window, MACD_FAST - 1) + x) / MACD_FAST
        elif n > MACD_SLOW and macd_fast is not None:
            macd_fast = _ema(macd_fast, x, _k(MACD_FAST))
        if macd_fast is not None and slow is not None:
            macd = macd_fast - slow
            first_signal = MACD_SLOW + MACD_SIGNAL - 1
            if n < first_signal:
                signal_seed += macd
            elif n == first_signal:
                signal = (signal_seed + macd) / MACD_SIGNAL
            elif signal is not None:
                signal = _ema(signal, macd, _k(MACD_SIGNAL))
            if n >= first_signal and signal is not None:
                values["macd"], values["macd_signal"] = macd, signal
                values["macd_hist"] = macd - signal

        return _Step(sums, ema, gain, loss, seed_gain, seed_loss, macd_fast, signal,
                     signal_seed, values)


def _sum_newest(window: deque[float], count: int) -> float:
    """Sum of the newest ``count`` values of ``window`` (used once per seed, so O(period))."""
    if count <= 0:
        return 0.0
    return math.fsum(list(window)[-count:])


def _checked(value: float) -> float:
    x = float(value)
    if not math.isfinite(x) or x <= 0.0:
        raise ValueError(f"candle close must be a positive finite number, got {value!r}")
    return x
