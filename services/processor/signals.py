"""Indicators per candle and alerts (levels, crosses, surges, drawdowns, cascades): pure logic.

The processor owns one :class:`SignalEngine` per worker, feeds it candles, sector caps, asset
stats and liquidation totals, and produces what it returns. No I/O here; the state is plain JSON.

Alert rules (every one fires on the edge, once, never on each update):

- Candle alerts use closed candles of the intervals in ``alert_intervals`` (sector caps) or
  ``alert_asset_intervals`` (asset prices, upper-case series) only; a forming candle
  gets provisional indicators and never alerts. History candles (``seed_history``) advance the
  same state silently, so the first live close can already cross.
- ``sma_cross``: the close flips sides of SMA 50/100/200, passing it by ``alert_sma_hysteresis_pct``
  (values.direction ``above``/``below``). "Testing": kind ``sma_cross`` with ``values.testing:
  true`` when the close enters the zone 0..``alert_sma_test_pct`` % above the SMA (periods in
  ``alert_sma_test_periods``); re-armed once the close leaves the zone by the hysteresis.
- ``rsi_cross``: RSI(14) flips sides of 30/50/70 by ``alert_rsi_hysteresis`` points.
- ``local_high`` / ``local_low``: a candle whose high (low) beats the previous
  ``alert_local_lookback`` candles, confirmed when the next ``alert_local_confirm`` candles stay
  at or below (above) it; the alert names that candle (``values.open_time``).
- ``support_resistance``: the nearest round-number levels below/above the close, multiples of
  ``alert_round_step_mult`` x 10^(digits-1) (0.2T for a cap of 3.38T); alerted when the pair
  changes, i.e. once the close leaves it by ``alert_round_hysteresis`` of a step.
- ``volume_surge`` (sectors, and assets if enabled), ``sector_drawdown`` and
  ``liquidation_cascade``: threshold conditions with a re-arm band (see settings).

Alert ids are ``kind:subject:...:<open_time or minute of ts>``: a redelivered input yields the
same id, so consumers can deduplicate.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from services.common.codec import now_ms
from services.processor.indicators import SeriesIndicators
from services.processor.settings import ProcessorSettings

Alert = dict[str, Any]
STATE_VERSION = 1
SMA_CROSS_PERIODS = (50, 100, 200)
RSI_LEVELS = (30, 50, 70)
LIQ_SIDES = (("long", -1), ("short", 1))  # liquidated side, price direction that drives it
LIQ_REARM_SHARE = 0.05
_INF = math.inf
UNITS = {"1m": "minute", "1h": "hour", "1d": "day"}


def fmt_value(x: float) -> str:
    """Short human form: 3.38T, 42.50B, 853.00M, 102,345, 0.3412."""
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M")):
        if abs(x) >= scale:
            return f"{x / scale:.2f}{suffix}"
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.4g}"


def round_levels(close: float, mult: float) -> tuple[float, float, float]:
    """(support, resistance, step): multiples of ``mult`` x 10^(digits-1) around ``close``.

    Decimal arithmetic keeps the levels exact round numbers (0.34, not 0.34000000000000002).
    """
    exponent = math.floor(math.log10(close)) - 1
    step = Decimal(repr(mult)).scaleb(exponent)
    k = (Decimal(repr(close)) / step).to_integral_value(rounding="ROUND_FLOOR")
    support = k * step
    return float(support), float(support + step), float(step)


def _minute(ts: int) -> int:
    return ts // 60_000 * 60_000


def _when(open_time: int, interval: str) -> str:
    """UTC date of a daily candle, date and time of shorter ones."""
    at = datetime.fromtimestamp(open_time / 1000, tz=UTC)
    return at.strftime("%Y-%m-%d" if interval == "1d" else "%Y-%m-%d %H:%M UTC")


def _describe(series: str) -> str:
    if series == "total":
        return "total market cap"
    return f"{series} price" if series.isupper() else f"{series} sector cap"


class _Series:
    """Indicators and alert state of one series:interval."""

    def __init__(self) -> None:
        self.ind = SeriesIndicators()
        self.last_open_time: int | None = None
        self.last: dict[str, Any] | None = None
        self.sma_side: dict[str, str] = {}
        self.sma_testing: dict[str, bool] = {}
        self.rsi_side: dict[str, str] = {}
        self.highs: list[list[float]] = []  # [open_time, high] of the newest closed candles
        self.lows: list[list[float]] = []
        self.levels: list[float] | None = None

    def state(self) -> dict[str, Any]:
        return {"ind": self.ind.state(), "last_open_time": self.last_open_time, "last": self.last,
                "sma_side": self.sma_side, "sma_testing": self.sma_testing,
                "rsi_side": self.rsi_side, "highs": self.highs, "lows": self.lows,
                "levels": self.levels}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> _Series:
        s = cls()
        s.ind = SeriesIndicators.from_state(state["ind"])
        s.last_open_time, s.last = state["last_open_time"], state["last"]
        s.sma_side, s.sma_testing = dict(state["sma_side"]), dict(state["sma_testing"])
        s.rsi_side, s.levels = dict(state["rsi_side"]), state["levels"]
        s.highs, s.lows = [list(x) for x in state["highs"]], [list(x) for x in state["lows"]]
        return s


def _flip(side: str | None, x: float, level: float, band: float) -> str:
    """Side of ``level`` that ``x`` is on, changing only once ``x`` passes it by ``band``."""
    if x < level - band:
        return "below"
    if x > level + band:
        return "above"
    if side is not None:
        return side
    return "above" if x >= level else "below"


class SignalEngine:
    """Indicators and alerts for every series, sector, asset and liquidation scope of a worker."""

    def __init__(self, settings: ProcessorSettings, clock: Callable[[], int] = now_ms) -> None:
        self.settings = settings
        self.clock = clock
        self.series: dict[str, _Series] = {}
        self.flags: dict[str, bool] = {}
        self.liq: dict[str, dict[str, float]] = {}

    # -- candles ----------------------------------------------------------------------------

    def seed_history(self, candle: dict[str, Any]) -> None:
        """Apply a closed backfill candle (time order per series); raises no alert."""
        if candle.get("closed") is not True:
            raise ValueError("history candles must be closed")
        self._apply(candle, emit=False)

    def on_candle(self, candle: dict[str, Any]) -> tuple[dict[str, Any], list[Alert]]:
        """Indicators value for a candle (closed or forming) and the alerts its close raises.

        A closed candle at or before the last committed one of its series is a redelivery: the
        last committed value is returned again and nothing changes. Raises ValueError on a
        malformed candle (the caller dead-letters it).
        """
        return self._apply(candle, emit=True)

    def _apply(self, candle: dict[str, Any], emit: bool) -> tuple[dict[str, Any], list[Alert]]:
        series, interval, open_time, close, closed, ts = _candle_fields(candle)
        key = f"{series}:{interval}"
        st = self.series.get(key)
        if st is None:
            st = self.series[key] = _Series()
        if st.last is not None and st.last_open_time is not None and open_time <= st.last_open_time:
            return {**st.last, "ts_emit": self.clock()}, []
        if not closed:
            return {"series": series, "interval": interval, "open_time": open_time, "close": close,
                    "closed": closed, **st.ind.preview(close), "ts": ts, "ts_emit": self.clock()}, []
        last = {"series": series, "interval": interval, "open_time": open_time, "close": close,
                "closed": closed, **st.ind.close(close), "ts": ts}
        value = last.copy()
        value["ts_emit"] = self.clock()
        alerts: list[Alert] = []
        if interval in self._alert_intervals(series):
            alerts = self._candle_alerts(st, candle, value)
        st.last_open_time, st.last = open_time, last
        return value, (alerts if emit else [])

    def _alert_intervals(self, series: str) -> tuple[str, ...]:
        """Asset price series (upper case) have their own, sparser, alert intervals."""
        if series.isupper():
            return tuple(self.settings.alert_asset_intervals)
        return tuple(self.settings.alert_intervals)

    def _candle_alerts(self, st: _Series, candle: dict[str, Any], value: dict[str, Any]) -> list[Alert]:
        alerts = self._sma_alerts(st, value)
        alerts += self._rsi_alerts(st, value)
        alerts += self._extreme_alerts(st, candle, value)
        alerts += self._level_alerts(st, value)
        return alerts

    def _candle_alert(self, kind: str, value: dict[str, Any], detail: str, message: str,
                      values: dict[str, Any], open_time: int | None = None) -> Alert:
        series, interval = value["series"], value["interval"]
        at = value["open_time"] if open_time is None else open_time
        return self._alert(kind, series, f"{interval}:{detail}:{at}", message,
                           {"interval": interval, "open_time": at, "close": value["close"], **values},
                           value["ts"])

    def _sma_alerts(self, st: _Series, value: dict[str, Any]) -> list[Alert]:
        s = self.settings
        close, out = value["close"], []
        unit = UNITS[value["interval"]]
        what = _describe(value["series"])
        test_periods = {int(p) for p in s.alert_sma_test_periods}
        for period in SMA_CROSS_PERIODS:
            sma = value[f"sma{period}"]
            if sma is None:
                continue
            band = sma * s.alert_sma_hysteresis_pct / 100.0
            side = st.sma_side.get(str(period))
            new = _flip(side, close, sma, band)
            st.sma_side[str(period)] = new
            nums = {"sma_period": period, "sma": sma, "dist_pct": value[f"dist_sma{period}_pct"]}
            if side is not None and new != side:
                rel = "<" if new == "below" else ">"
                out.append(self._candle_alert(
                    "sma_cross", value, f"sma{period}:{new}",
                    f"{what} crossed {new} its {period}-{unit} SMA "
                    f"({fmt_value(close)} {rel} {fmt_value(sma)})",
                    {**nums, "direction": new, "testing": False}))
            if period not in test_periods:
                continue
            dist = value[f"dist_sma{period}_pct"]
            band_pct = s.alert_sma_hysteresis_pct
            was = st.sma_testing.get(str(period), False)
            inside = 0.0 <= dist <= s.alert_sma_test_pct
            st.sma_testing[str(period)] = inside or (was and -band_pct <= dist <= s.alert_sma_test_pct + band_pct)
            if inside and not was:
                out.append(self._candle_alert(
                    "sma_cross", value, f"sma{period}:testing",
                    f"{what} is testing its {period}-{unit} SMA from above "
                    f"({fmt_value(close)}, {dist:.2f}% above {fmt_value(sma)})",
                    {**nums, "direction": "testing", "testing": True}))
        return out

    def _rsi_alerts(self, st: _Series, value: dict[str, Any]) -> list[Alert]:
        rsi = value["rsi14"]
        if rsi is None or (st.ind.gain == 0.0 and st.ind.loss == 0.0):
            return []  # no RSI yet, or a flat window (RSI carries no information)
        out = []
        what = _describe(value["series"])
        for level in RSI_LEVELS:
            side = st.rsi_side.get(str(level))
            new = _flip(side, rsi, float(level), self.settings.alert_rsi_hysteresis)
            st.rsi_side[str(level)] = new
            if side is not None and new != side:
                out.append(self._candle_alert(
                    "rsi_cross", value, f"rsi{level}:{new}",
                    f"RSI(14) of {what} ({value['interval']}) crossed {new} {level} ({rsi:.1f})",
                    {"level": level, "direction": new, "rsi14": rsi}))
        return out

    def _extreme_alerts(self, st: _Series, candle: dict[str, Any], value: dict[str, Any]) -> list[Alert]:
        s = self.settings
        size = s.alert_local_lookback + s.alert_local_confirm + 1
        out = []
        what = _describe(value["series"])
        for kind, history, price, sign in (("local_high", st.highs, float(candle["high"]), 1.0),
                                           ("local_low", st.lows, float(candle["low"]), -1.0)):
            history.append([value["open_time"], price])
            del history[:-size]
            if len(history) < size:
                continue
            at, extreme = history[s.alert_local_lookback]
            before = [p for _, p in history[:s.alert_local_lookback]]
            after = [p for _, p in history[s.alert_local_lookback + 1:]]
            if sign * extreme > max(sign * p for p in before) and all(sign * p <= sign * extreme for p in after):
                word = "high" if sign > 0 else "low"
                out.append(self._candle_alert(
                    kind, value, word,
                    f"{what} made a local {word} of {fmt_value(extreme)} on {_when(int(at), value['interval'])} "
                    f"({value['interval']} candle)",
                    {"price": extreme, "lookback": s.alert_local_lookback, "confirm": s.alert_local_confirm},
                    open_time=int(at)))
        return out

    def _level_alerts(self, st: _Series, value: dict[str, Any]) -> list[Alert]:
        close = value["close"]
        if st.levels is not None:
            support, resistance = st.levels
            band = (resistance - support) * self.settings.alert_round_hysteresis
            if support - band <= close <= resistance + band:
                return []
        previous = st.levels
        support, resistance, step = round_levels(close, self.settings.alert_round_step_mult)
        st.levels = [support, resistance]
        if previous == st.levels:
            return []
        return [self._candle_alert(
            "support_resistance", value, f"{support!r}-{resistance!r}",
            f"{_describe(value['series'])}: nearest round-number support {fmt_value(support)}, "
            f"resistance {fmt_value(resistance)} (close {fmt_value(close)})",
            {"support": support, "resistance": resistance, "step": step,
             "previous": previous})]

    # -- sectors, assets, liquidations ------------------------------------------------------

    def on_sector(self, sector_value: dict[str, Any]) -> list[Alert]:
        """Sector drawdown and volume surge of one sector-cap value."""
        s = self.settings
        sector, ts = str(sector_value["sector"]), int(sector_value["ts"])
        out = self._volume_surge(sector, sector_value)
        change = sector_value.get("change_24h_pct")
        if change is None:
            return out
        key = f"sector_drawdown:{sector}"
        if self.flags.get(key):
            if change > -(s.alert_drawdown_pct - s.alert_drawdown_hysteresis_pct):
                self.flags[key] = False
        elif change <= -s.alert_drawdown_pct:
            self.flags[key] = True
            name = "total market" if sector == "total" else f"{sector} sector"
            cap = sector_value.get("cap_usd")
            ago = sector_value.get("cap_24h_ago_usd")
            caps = f" ({fmt_value(ago)} -> {fmt_value(cap)})" if cap is not None and ago is not None else ""
            out.append(self._alert(
                "sector_drawdown", sector, str(_minute(ts)),
                f"{name} cap fell {-change:.1f}% in 24 h{caps}",
                {"change_24h_pct": change, "cap_usd": cap, "cap_24h_ago_usd": ago,
                 "threshold_pct": s.alert_drawdown_pct}, ts))
        return out

    def on_asset(self, asset_value: dict[str, Any]) -> list[Alert]:
        """Volume surge of one asset (if ``alert_asset_volume_surge``)."""
        if not self.settings.alert_asset_volume_surge:
            return []
        return self._volume_surge(str(asset_value["asset"]), asset_value)

    def _volume_surge(self, subject: str, value: dict[str, Any]) -> list[Alert]:
        s = self.settings
        change = value.get("volume_change_24h_pct")
        v24, vprev = value.get("volume_24h_usd"), value.get("volume_prev_24h_usd")
        if change is None or v24 is None or vprev is None:
            return []
        key = f"volume_surge:{subject}"
        if self.flags.get(key):
            if change < s.alert_volume_surge_pct - s.alert_volume_hysteresis_pct:
                self.flags[key] = False
            return []
        if change < s.alert_volume_surge_pct or min(v24, vprev) < s.alert_volume_min_usd:
            return []
        self.flags[key] = True
        ts = int(value["ts"])
        return [self._alert(
            "volume_surge", subject, str(_minute(ts)),
            f"{subject} 24 h volume up {change:.1f}% ({fmt_value(vprev)} -> {fmt_value(v24)})",
            {"volume_change_24h_pct": change, "volume_24h_usd": v24, "volume_prev_24h_usd": vprev,
             "threshold_pct": s.alert_volume_surge_pct}, ts)]

    def on_liquidation_totals(self, value: dict[str, Any], price_change_pct: float | None) -> list[Alert]:
        """Liquidation cascades of one scope; ``price_change_pct`` is the scope's price move.

        Two conditions per side (long liquidations with a falling price, short with a rising
        one): ``dominance`` (the side's share of the 24 h total >= ``alert_liq_dominance``) and
        ``burst`` (last hour's side notional >= ``alert_liq_burst_ratio`` x its hourly rate over
        the 23 h before). The caller passes the 24 h change of the scope's asset (the total cap
        for ``all`` and exchange scopes); with ``None`` no cascade is raised.
        """
        window, scope = str(value["window"]), str(value["scope"])
        self.liq[f"{window}:{scope}"] = {"long": float(value["long_usd"]),
                                         "short": float(value["short_usd"]), "ts": float(value["ts"])}
        day, hour = self.liq.get(f"24h:{scope}"), self.liq.get(f"1h:{scope}")
        ts = int(value["ts"])
        out: list[Alert] = []
        for side, direction in LIQ_SIDES:
            moving = price_change_pct is not None and price_change_pct * direction > 0
            if window == "24h" and day is not None:
                out += self._dominance(scope, side, day, moving, price_change_pct, ts)
            if window in ("1h", "24h") and day is not None and hour is not None:
                out += self._burst(scope, side, day, hour, moving, price_change_pct, ts)
        return out

    def _dominance(self, scope: str, side: str, day: dict[str, float], moving: bool,
                   price_change_pct: float | None, ts: int) -> list[Alert]:
        s = self.settings
        total = day["long"] + day["short"]
        share = day[side] / total if total > 0 else 0.0
        key = f"liquidation_cascade:{scope}:{side}:dominance"
        if self.flags.get(key):
            if share < s.alert_liq_dominance - LIQ_REARM_SHARE:
                self.flags[key] = False
            return []
        if not (moving and share >= s.alert_liq_dominance and day[side] >= s.alert_liq_min_usd):
            return []
        self.flags[key] = True
        return [self._alert(
            "liquidation_cascade", scope, f"{side}:dominance:{_minute(ts)}",
            f"{side} liquidations are {share * 100:.1f}% of the 24 h total in {scope} "
            f"({fmt_value(day[side])} of {fmt_value(total)}) while price moves {price_change_pct:+.2f}%",
            {"side": side, "mode": "dominance", "window": "24h", "side_usd": day[side],
             "total_usd": total, "share": share, "price_change_pct": price_change_pct}, ts)]

    def _burst(self, scope: str, side: str, day: dict[str, float], hour: dict[str, float],
               moving: bool, price_change_pct: float | None, ts: int) -> list[Alert]:
        s = self.settings
        last_hour = hour[side]
        trailing = max(day[side] - last_hour, 0.0) / 23.0
        ratio = last_hour / trailing if trailing > 0 else math.inf
        key = f"liquidation_cascade:{scope}:{side}:burst"
        if self.flags.get(key):
            if ratio < s.alert_liq_burst_ratio / 2 or last_hour < s.alert_liq_min_usd / 2:
                self.flags[key] = False
            return []
        if not (moving and ratio >= s.alert_liq_burst_ratio and last_hour >= s.alert_liq_min_usd):
            return []
        self.flags[key] = True
        return [self._alert(
            "liquidation_cascade", scope, f"{side}:burst:{_minute(ts)}",
            f"burst of {side} liquidations in {scope}: {fmt_value(last_hour)} in the last hour, "
            f"{'many' if math.isinf(ratio) else f'{ratio:.1f}'}x the trailing hourly rate, "
            f"price {price_change_pct:+.2f}%",
            {"side": side, "mode": "burst", "window": "1h", "side_usd": last_hour,
             "trailing_hourly_usd": trailing, "ratio": None if math.isinf(ratio) else ratio,
             "price_change_pct": price_change_pct}, ts)]

    # -- common -----------------------------------------------------------------------------

    def _alert(self, kind: str, subject: str, detail: str, message: str, values: dict[str, Any],
               ts: int) -> Alert:
        return {"kind": kind, "subject": subject, "message": message, "values": values,
                "id": f"{kind}:{subject}:{detail}", "ts": ts, "ts_emit": self.clock()}

    def state(self) -> dict[str, Any]:
        return {"series": {k: v.state() for k, v in self.series.items()}, **self.book_state()}

    @classmethod
    def from_state(cls, settings: ProcessorSettings, state: dict[str, Any],
                   clock: Callable[[], int] = now_ms) -> SignalEngine:
        engine = cls(settings, clock)
        engine.load_book_state(state)
        for key, series_state in state["series"].items():
            engine.load_series_state(key, series_state)
        return engine

    # Finer-grained state, for a table keyed like the candles: after on_candle/seed_history only
    # the candle's ``series:interval`` changed; after the other inputs only the book did.

    def series_state(self, key: str) -> dict[str, Any] | None:
        """State of one ``series:interval`` (None if never seen)."""
        st = self.series.get(key)
        return None if st is None else st.state()

    def load_series_state(self, key: str, state: dict[str, Any]) -> None:
        self.series[key] = _Series.from_state(state)

    def book_state(self) -> dict[str, Any]:
        """Edge flags and latest liquidation totals (everything but the series)."""
        return {"v": STATE_VERSION, "flags": dict(self.flags),
                "liq": {k: dict(v) for k, v in self.liq.items()}}

    def load_book_state(self, state: dict[str, Any]) -> None:
        if state.get("v") != STATE_VERSION:
            raise ValueError(f"unsupported signal state version {state.get('v')!r}")
        self.flags = dict(state["flags"])
        self.liq = {k: dict(v) for k, v in state["liq"].items()}


def _candle_fields(candle: dict[str, Any]) -> tuple[str, str, int, float, bool, int]:
    """(series, interval, open_time, close, closed, ts), or ValueError naming what is wrong.

    Every candle of the processor passes here, so a well-formed one (exact types: str, int,
    float, bool) is recognised with plain comparisons; anything else, valid or not, gets the
    full checks of :func:`_checked_candle_fields`.
    """
    try:
        series, interval, open_time, ts = candle["series"], candle["interval"], candle["open_time"], candle["ts"]
        close, closed, high, low = candle["close"], candle["closed"], candle["high"], candle["low"]
    except (KeyError, TypeError):
        return _checked_candle_fields(candle)
    if (type(series) is str and series and type(interval) is str and interval in UNITS
            and type(open_time) is int and type(ts) is int and type(closed) is bool
            and type(close) is float and type(high) is float and type(low) is float
            and 0.0 < close < _INF and 0.0 < high < _INF and 0.0 < low < _INF):
        return series, interval, open_time, close, closed, ts
    return _checked_candle_fields(candle)


def _checked_candle_fields(candle: dict[str, Any]) -> tuple[str, str, int, float, bool, int]:
    """:func:`_candle_fields` for any candle: converts what ``float`` converts, names what is wrong."""
    try:
        if not isinstance(candle["series"], str) or not isinstance(candle["interval"], str):
            raise TypeError("series and interval must be strings")
        if not all(isinstance(candle[k], int) and not isinstance(candle[k], bool) for k in ("open_time", "ts")):
            raise TypeError("open_time and ts must be integers (epoch ms)")
        series, interval = candle["series"], candle["interval"]
        open_time, ts = candle["open_time"], candle["ts"]
        close, closed = float(candle["close"]), candle["closed"]
        high, low = float(candle["high"]), float(candle["low"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed candle: {exc!r}") from exc
    if interval not in UNITS or not isinstance(closed, bool) or not series:
        raise ValueError(f"malformed candle: series={series!r} interval={interval!r} closed={closed!r}")
    if not all(math.isfinite(x) and x > 0 for x in (close, high, low)):
        raise ValueError(f"malformed candle: non-positive or non-finite price in {candle!r}")
    return series, interval, open_time, close, closed, ts
