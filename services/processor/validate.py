"""Decoding and checking of the processor's inputs (pure): a value or a dead-letter reason."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from services.common.events import InvalidEvent, Liquidation, TradeBar
from services.processor.reference import Universe
from services.processor.timeutil import MINUTE_MS, USD_QUOTES

INT64_MAX = 2**63 - 1
_BAR_INTS = ("minute", "count", "ts_first", "ts_last", "ts_recv")


@dataclass(frozen=True)
class Bounds:
    """What the processor accepts as plausible (settings ``processor_max_*``); anything outside is a
    dead letter before any state is touched. ``clock`` is the wall clock in epoch seconds."""

    max_clock_skew_ms: int = 60_000         # ts_recv may be this far past the wall clock
    max_ts_ahead_ms: int = 60_000           # an event's ts may be this far past its ts_recv
    max_notional_usd: float = 1e11          # one bar's or one liquidation's notional
    max_price_usd: float = 1e9
    clock: Callable[[], float] = field(default=time.time, compare=False)

    def check_times(self, ts: int, ts_recv: int) -> None:
        if ts_recv > self.clock() * 1000 + self.max_clock_skew_ms:
            raise InvalidEvent(f"ts_recv {ts_recv} is later than the wall clock (+{self.max_clock_skew_ms} ms)")
        if ts > ts_recv + self.max_ts_ahead_ms:
            raise InvalidEvent(f"ts {ts} is more than {self.max_ts_ahead_ms} ms after its ts_recv {ts_recv}")

    def check_amounts(self, notional: float, prices: tuple[float, ...]) -> None:
        if not notional <= self.max_notional_usd:
            raise InvalidEvent(f"notional_usd {notional!r} is above the plausible {self.max_notional_usd:g} USD")
        for p in prices:
            if not (0 < p <= self.max_price_usd and math.isfinite(p)):
                raise InvalidEvent(f"price outside (0, {self.max_price_usd:g}] USD")


DEFAULT_BOUNDS = Bounds()


def _int64(data: Any, names: tuple[str, ...]) -> None:
    """Integers beyond int64 (stored in typed arrays and Kafka/JSON consumers) are refused up front."""
    if isinstance(data, dict):
        for name in names:
            value = data.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and not -INT64_MAX <= value <= INT64_MAX:
                raise InvalidEvent(f"{name} is outside the 64-bit integer range")


def _decode(raw: bytes | None) -> Any:
    if raw is None:
        raise InvalidEvent("empty message")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(f"not JSON: {exc}") from exc


def _check_asset(base: str, quote: str, universe: Universe) -> str:
    asset = base.upper()
    if universe.get(asset) is None:
        raise InvalidEvent(f"unknown asset {asset!r} (not in the asset universe)")
    if quote.upper() not in USD_QUOTES:
        raise InvalidEvent(f"quote {quote!r} is not a USD quote ({', '.join(sorted(USD_QUOTES))})")
    return asset


def parse_bar(raw: bytes | None, universe: Universe, bounds: Bounds = DEFAULT_BOUNDS,
              key: bytes | None | bool = False) -> TradeBar:
    """A usable trade bar (``base`` upper-cased) or :class:`InvalidEvent` with the reason; ``key``
    (the message key, False when unknown) must name the bar's base asset (the topic's key)."""
    data = _decode(raw)
    try:
        bar = TradeBar.from_dict(data)
    except InvalidEvent:
        _int64(data, _BAR_INTS)         # an out-of-range integer is the reason given first
        raise
    if max(bar.minute, bar.count, bar.ts_first, bar.ts_last, bar.ts_recv) > INT64_MAX:
        _int64(data, _BAR_INTS)
    bar.base = _check_asset(bar.base, bar.quote, universe)
    if key is not False and (not isinstance(key, bytes) or key.decode(errors="replace").upper() != bar.base):
        raise InvalidEvent(f"message key {key!r} does not match the bar's base asset {bar.base!r}")
    bounds.check_times(bar.ts_last, bar.ts_recv)
    bounds.check_amounts(bar.notional_usd, (bar.open, bar.high, bar.low, bar.close))
    if bar.ts_first > bar.ts_last:
        raise InvalidEvent("ts_first is after ts_last")
    minute = bar.minute
    if bar.ts_first // MINUTE_MS * MINUTE_MS != minute or bar.ts_last // MINUTE_MS * MINUTE_MS != minute:
        raise InvalidEvent("bar trades are not all inside its minute")
    if not bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high:
        raise InvalidEvent("bar OHLC is inconsistent (low <= open, close <= high)")
    if bar.buy_notional_usd > bar.notional_usd * (1 + 1e-9):
        raise InvalidEvent("buy_notional_usd exceeds notional_usd")
    return bar


def parse_liquidation(raw: bytes | None, universe: Universe, bounds: Bounds = DEFAULT_BOUNDS) -> Liquidation:
    """A usable liquidation (``base`` upper-cased) or :class:`InvalidEvent` with the reason."""
    data = _decode(raw)
    _int64(data, ("ts", "ts_recv"))
    liq = Liquidation.from_dict(data)
    liq.base = _check_asset(liq.base, liq.quote, universe)
    bounds.check_times(liq.ts, liq.ts_recv)
    bounds.check_amounts(liq.notional_usd, (liq.price,))
    return liq
