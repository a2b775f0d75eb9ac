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

Every candle of the processor passes here (closed ones through :meth:`SeriesIndicators.close`,
forming ones through :meth:`SeriesIndicators.preview`), so once seeded a step works on local
variables: the two EMAs and the MACD/signal pair are spelled out rather than looped over (the
periods are fixed by the output fields anyway), the four window sums slide through one function. Before an indicator is seeded its
internal value is 0.0 and unused; whether it is seeded follows from ``count`` alone, and
:meth:`~SeriesIndicators.state` writes ``None`` for it, as the state format always did.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

SMA_PERIODS = (20, 50, 100, 200)
EMA_PERIODS = (12, 26)
RSI_PERIOD = 14
MACD_FAST, MACD_SLOW, MACD_SIGNAL = 12, 26, 9
WINDOW = max(SMA_PERIODS)
ANCHOR_EVERY = WINDOW
_LOST = 1e4            # a window sum this many times below its peak is recomputed (_exact_sum)
STATE_VERSION = 1

SMA_KEYS = tuple((f"sma{p}", f"dist_sma{p}_pct") for p in SMA_PERIODS)
EMA_KEYS = tuple(f"ema{p}" for p in EMA_PERIODS)
EMA_K = tuple(2.0 / (p + 1) for p in EMA_PERIODS)
FIELDS = (
    "sma20", "sma50", "sma100", "sma200", "ema12", "ema26", "rsi14", "macd", "macd_signal",
    "macd_hist", "dist_sma20_pct", "dist_sma50_pct", "dist_sma100_pct", "dist_sma200_pct",
)

Values = dict[str, float | None]

_K_FAST, _K_SLOW = EMA_K
_K_MACD_FAST, _K_SIGNAL = 2.0 / (MACD_FAST + 1), 2.0 / (MACD_SIGNAL + 1)
_RSI_KEEP = RSI_PERIOD - 1
_FIRST_RSI = RSI_PERIOD + 1  # closes needed for the first RSI (it needs RSI_PERIOD changes)
_FIRST_SIGNAL = MACD_SLOW + MACD_SIGNAL - 1  # closes needed for the first MACD output
_STEADY = WINDOW  # from this many committed closes on, every indicator is seeded (WINDOW >= all starts)
_INF = math.inf

# (sums, ema_fast, ema_slow, gain, loss, seed_gain, seed_loss, macd_fast, signal, signal_seed):
# the state after one close, applied by ``close`` and dropped by ``preview``.
_Next = tuple[tuple[float, ...], float, float, float, float, float, float, float, float, float]


def _slide(total: float, comp: float, x: float, old: float) -> tuple[float, float]:
    """A full window's Neumaier sum (total, comp) plus the new close ``x``, minus ``old``, the close
    leaving it: the operations of :func:`_grow` with ``x`` then with ``-old``. Both are closes,
    positive, so ``abs(total) >= abs(x)`` is written ``total >= x or total <= -x`` (likewise for
    ``old``): the same branch without the calls, hence the same floats."""
    t = total + x
    if total >= x or total <= -x:
        comp += (total - t) + x
    else:
        comp += (x - t) + total
    y = -old
    total = t + y
    if t >= old or t <= y:
        comp += (t - total) + y
    else:
        comp += (y - total) + t
    return total, comp


def _slide_all(sums: tuple[float, ...], x: float, window: deque[float]) -> tuple[float, ...]:
    """The four SMA sums ``(total, comp, ...)`` slid by one close (:func:`_slide`)."""
    t20, c20, t50, c50, t100, c100, t200, c200 = sums
    return (*_slide(t20, c20, x, window[-20]), *_slide(t50, c50, x, window[-50]),
            *_slide(t100, c100, x, window[-100]), *_slide(t200, c200, x, window[-200]))


def _grow(total: float, comp: float, x: float) -> tuple[float, float]:
    """Neumaier sum (total, comp) plus ``x`` (the window is not full yet)."""
    t = total + x
    if abs(total) >= abs(x):
        comp += (total - t) + x
    else:
        comp += (x - t) + total
    return t, comp


class SeriesIndicators:
    """SMA/EMA/RSI/MACD of one series, fed with closed candles' closes in time order."""

    __slots__ = ("count", "window", "_sums", "_peaks", "_ema_fast", "_ema_slow", "_gain", "_loss",
                 "seed_gain", "seed_loss", "_macd_fast", "_signal", "signal_seed", "last")

    def __init__(self) -> None:
        self.count = 0
        self.window: deque[float] = deque(maxlen=WINDOW)
        self._sums: tuple[float, ...] = (0.0,) * (2 * len(SMA_PERIODS))  # (total, comp) per SMA
        self._peaks: tuple[float, ...] = (0.0,) * len(SMA_PERIODS)  # largest sum since it was last exact
        self._ema_fast = self._ema_slow = 0.0
        self._gain = self._loss = 0.0  # Wilder averages, once seeded
        self.seed_gain = 0.0  # sums of the first RSI_PERIOD changes
        self.seed_loss = 0.0
        self._macd_fast = 0.0  # TA-Lib's MACD-aligned fast EMA
        self._signal = 0.0
        self.signal_seed = 0.0  # sum of the first MACD_SIGNAL MACD values
        self.last: Values = dict.fromkeys(FIELDS)

    @property
    def gain(self) -> float | None:
        """Wilder average gain (None until RSI_PERIOD changes were seen)."""
        return self._gain if self.count >= _FIRST_RSI else None

    @property
    def loss(self) -> float | None:
        """Wilder average loss (None until RSI_PERIOD changes were seen)."""
        return self._loss if self.count >= _FIRST_RSI else None

    # -- public API -------------------------------------------------------------------------

    def close(self, value: float) -> Values:
        """Commit a closed candle's close and return every indicator at it."""
        x, (values, nxt) = self._step(value)
        (self._sums, self._ema_fast, self._ema_slow, self._gain, self._loss, self.seed_gain,
         self.seed_loss, self._macd_fast, self._signal, self.signal_seed) = nxt
        s, p = self._sums, self._peaks
        self._peaks = (max(p[0], s[0] + s[1]), max(p[1], s[2] + s[3]), max(p[2], s[4] + s[5]), max(p[3], s[6] + s[7]))
        self.window.append(x)
        self.count += 1
        if self.count % ANCHOR_EVERY == 0:
            self._reanchor()
        self.last = values
        return values.copy()

    def preview(self, value: float) -> Values:
        """Indicators as if ``value`` closed now (the forming candle); the state is unchanged."""
        return self._step(value)[1][0]

    def state(self) -> dict[str, Any]:
        n, s = self.count, self._sums
        return {
            "v": STATE_VERSION, "count": n, "window": list(self.window),
            "sums": [[s[i], s[i + 1]] for i in range(0, len(s), 2)],
            "ema": [_seeded(self._ema_fast, n, EMA_PERIODS[0]), _seeded(self._ema_slow, n, EMA_PERIODS[1])],
            "gain": self.gain, "loss": self.loss, "seed_gain": self.seed_gain,
            "seed_loss": self.seed_loss, "macd_fast": _seeded(self._macd_fast, n, MACD_SLOW),
            "signal": _seeded(self._signal, n, _FIRST_SIGNAL),
            "signal_seed": self.signal_seed, "last": dict(self.last),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SeriesIndicators:
        if state.get("v") != STATE_VERSION:
            raise ValueError(f"unsupported indicator state version {state.get('v')!r}")
        ind = cls()
        ind.count = int(state["count"])
        ind.window.extend(float(x) for x in state["window"])
        ind._sums = tuple(v for a, b in state["sums"] for v in (float(a), float(b)))
        ind._peaks = tuple(ind._sums[i] + ind._sums[i + 1] for i in range(0, len(ind._sums), 2))
        ind._ema_fast, ind._ema_slow = (_unseeded(x) for x in state["ema"])
        ind._gain, ind._loss = _unseeded(state["gain"]), _unseeded(state["loss"])
        ind.seed_gain, ind.seed_loss = float(state["seed_gain"]), float(state["seed_loss"])
        ind._macd_fast, ind._signal = _unseeded(state["macd_fast"]), _unseeded(state["signal"])
        ind.signal_seed = float(state["signal_seed"])
        ind.last = {f: state["last"].get(f) for f in FIELDS}
        return ind

    # -- internals --------------------------------------------------------------------------

    def _reanchor(self) -> None:
        """Replace the running sums by exact ones (amortised O(1): once per ANCHOR_EVERY)."""
        values = list(self.window)
        self._sums = tuple(x for period in SMA_PERIODS for x in (math.fsum(values[-period:]), 0.0))
        self._peaks = self._sums[::2]

    def _step(self, value: float) -> tuple[float, tuple[Values, _Next]]:
        """The checked close and its step (see :meth:`_steady_step`), the state untouched."""
        x = float(value)
        if not 0.0 < x < _INF:  # NaN fails too
            raise _bad_close(value)
        return x, (self._steady_step(x) if self.count >= _STEADY else self._warmup_step(x))

    def _steady_step(self, x: float) -> tuple[Values, _Next]:
        """Every indicator at close ``x`` and the state after it, without touching the state.

        Once every indicator is seeded (``count >= _STEADY``): the arithmetic of
        :meth:`_warmup_step` past all its seeding branches, on local variables, and the value dict
        built once. Tests hold both to TA-Lib and to recorded values of the earlier implementation.
        """
        window = self.window
        sums = t20, c20, t50, c50, t100, c100, t200, c200 = _slide_all(self._sums, x, window)
        s20, s50, s100, s200 = t20 + c20, t50 + c50, t100 + c100, t200 + c200
        peaks = self._peaks
        if s20 * _LOST < peaks[0] or s50 * _LOST < peaks[1] or s100 * _LOST < peaks[2] or s200 * _LOST < peaks[3]:
            return self._warmup_step(x)   # a running sum lost its precision: the general step repairs it
        sma20, sma50, sma100, sma200 = s20 / 20, s50 / 50, s100 / 100, s200 / 200

        ema_fast = (x - self._ema_fast) * _K_FAST + self._ema_fast
        ema_slow = (x - self._ema_slow) * _K_SLOW + self._ema_slow

        change = x - window[-1]  # the side without the change adds 0.0: a no-op, as neither is -0.0
        if change > 0:
            gain = (self._gain * _RSI_KEEP + change) / RSI_PERIOD
            loss = self._loss * _RSI_KEEP / RSI_PERIOD
        else:
            gain = self._gain * _RSI_KEEP / RSI_PERIOD
            loss = (self._loss * _RSI_KEEP + -change) / RSI_PERIOD
        both = gain + loss
        rsi = 100.0 * (gain / both) if both != 0.0 else 0.0

        macd_fast = (x - self._macd_fast) * _K_MACD_FAST + self._macd_fast
        macd = macd_fast - ema_slow
        signal = (macd - self._signal) * _K_SIGNAL + self._signal

        values: Values = {
            "sma20": sma20, "sma50": sma50, "sma100": sma100, "sma200": sma200,
            "ema12": ema_fast, "ema26": ema_slow, "rsi14": rsi,
            "macd": macd, "macd_signal": signal, "macd_hist": macd - signal,
            "dist_sma20_pct": (x / sma20 - 1.0) * 100.0, "dist_sma50_pct": (x / sma50 - 1.0) * 100.0,
            "dist_sma100_pct": (x / sma100 - 1.0) * 100.0, "dist_sma200_pct": (x / sma200 - 1.0) * 100.0,
        }
        return values, (sums, ema_fast, ema_slow, gain, loss, self.seed_gain, self.seed_loss,
                        macd_fast, signal, self.signal_seed)

    def _warmup_step(self, x: float) -> tuple[Values, _Next]:
        """:meth:`_steady_step` while some indicator is not seeded yet (the first ``_STEADY`` closes)."""
        n = self.count + 1  # number of closes including x
        window = self.window
        values: Values = dict.fromkeys(FIELDS)

        sums: list[float] = []
        for i, (period, (sma_key, dist_key)) in enumerate(zip(SMA_PERIODS, SMA_KEYS, strict=True)):
            total, comp = _grow(self._sums[2 * i], self._sums[2 * i + 1], x)
            if n > period:
                total, comp = _grow(total, comp, -window[-period])
            if (total + comp) * _LOST < self._peaks[i]:   # see _exact_sum
                total, comp = _exact_sum(window, x, min(n, period)), 0.0
            sums += (total, comp)
            if n >= period:
                sma = (total + comp) / period
                values[sma_key], values[dist_key] = sma, (x / sma - 1.0) * 100.0

        ema_fast = _warmup_ema(self._ema_fast, x, window, n, EMA_PERIODS[0], _K_FAST)
        ema_slow = _warmup_ema(self._ema_slow, x, window, n, EMA_PERIODS[1], _K_SLOW)
        for period, key, ema in zip(EMA_PERIODS, EMA_KEYS, (ema_fast, ema_slow), strict=True):
            if n >= period:
                values[key] = ema

        gain, loss, seed_gain, seed_loss = self._gain, self._loss, self.seed_gain, self.seed_loss
        if n >= 2:
            change = x - window[-1]
            up, down = (change, 0.0) if change > 0 else (0.0, -change)
            if n <= _FIRST_RSI:
                seed_gain, seed_loss = seed_gain + up, seed_loss + down
                if n == _FIRST_RSI:
                    gain, loss = seed_gain / RSI_PERIOD, seed_loss / RSI_PERIOD
            else:
                gain = (gain * _RSI_KEEP + up) / RSI_PERIOD
                loss = (loss * _RSI_KEEP + down) / RSI_PERIOD
            if n >= _FIRST_RSI:
                both = gain + loss
                values["rsi14"] = 100.0 * (gain / both) if both != 0.0 else 0.0

        macd_fast, signal, signal_seed = self._macd_fast, self._signal, self.signal_seed
        if n == MACD_SLOW:
            macd_fast = (_sum_newest(window, MACD_FAST - 1) + x) / MACD_FAST
        elif n > MACD_SLOW:
            macd_fast = (x - macd_fast) * _K_MACD_FAST + macd_fast
        if n >= MACD_SLOW:
            macd = macd_fast - ema_slow
            if n < _FIRST_SIGNAL:
                signal_seed += macd
            elif n == _FIRST_SIGNAL:
                signal = (signal_seed + macd) / MACD_SIGNAL
            else:
                signal = (macd - signal) * _K_SIGNAL + signal
            if n >= _FIRST_SIGNAL:
                values["macd"], values["macd_signal"], values["macd_hist"] = macd, signal, macd - signal

        return values, (
            tuple(sums), ema_fast, ema_slow, gain, loss, seed_gain, seed_loss, macd_fast, signal,
            signal_seed)


def _warmup_ema(prev: float, x: float, window: deque[float], n: int, period: int, k: float) -> float:
    """EMA(period) at the n-th close ``x``: seeded with the SMA of the first ``period`` closes."""
    if n == period:
        return (_sum_newest(window, period - 1) + x) / period
    if n > period:
        return (x - prev) * k + prev
    return prev


def _exact_sum(window: deque[float], x: float, count: int) -> float:
    """Exact sum of the newest ``count`` closes, ``x`` included.

    A running sum's error is bounded by the largest sums it held since it was last exact. When the
    closes of a window fall by orders of magnitude, what is left after the large ones leave it is
    mostly that error, even zero or negative (an SMA of 0 then divided a distance by zero). A sum
    below ``1 / _LOST`` of its peak since the last exact sum (a 10,000-fold fall within some 200
    closes: never seen in a market) is therefore recomputed from the window; the exact re-anchoring
    every ``ANCHOR_EVERY`` closes resets the peaks."""
    return math.fsum([*list(window)[len(window) - count + 1:], x]) if count > 1 else x


def _sum_newest(window: deque[float], count: int) -> float:
    """Sum of the newest ``count`` values of ``window`` (used once per seed, so O(period))."""
    if count <= 0:
        return 0.0
    return math.fsum(list(window)[-count:])


def _seeded(value: float, count: int, first: int) -> float | None:
    """``value`` as the state writes it: None before the ``first``-th close seeded it."""
    return value if count >= first else None


def _unseeded(value: float | None) -> float:
    return 0.0 if value is None else float(value)


def _bad_close(value: float) -> ValueError:
    return ValueError(f"candle close must be a positive finite number, got {value!r}")
