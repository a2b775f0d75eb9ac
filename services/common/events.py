"""Canonical events: the values on the raw topics (see schemas/ for their JSON Schema).

They are slotted dataclasses; ``orjson`` serializes them natively (see :mod:`services.common.codec`).
``from_dict`` checks a decoded message and raises :class:`InvalidEvent` with a reason that the
caller puts in a dead letter; it never lets a NaN, infinite, zero or negative amount through.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

Market = Literal["spot", "perp", "future"]
TakerSide = Literal["buy", "sell"]
PositionSide = Literal["long", "short"]

MARKETS = frozenset(("spot", "perp", "future"))
TAKER_SIDES = frozenset(("buy", "sell"))
POSITION_SIDES = frozenset(("long", "short"))
# Quote currencies counted as 1 USD (documented approximation, docs/semantics.md).
USD_QUOTES = frozenset(("USD", "USDT", "USDC", "FDUSD"))
_INF = math.inf


class InvalidEvent(ValueError):
    """A message that is not a valid canonical event; ``str(exc)`` is the dead-letter reason."""


def positive_finite(value: Any, name: str) -> float:
    """``value`` as a float that is finite and > 0, else :class:`InvalidEvent`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidEvent(f"{name} must be a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidEvent(f"{name} must be finite, got {number}")
    if number <= 0:
        raise InvalidEvent(f"{name} must be > 0, got {number}")
    return number


def _str(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidEvent(f"{name} must be a non-empty string")
    return value


def _choice(data: dict[str, Any], name: str, allowed: frozenset[str]) -> str:
    value = _str(data, name)
    if value not in allowed:
        raise InvalidEvent(f"{name} must be one of {sorted(allowed)}, got {value!r}")
    return value


def _ts(data: dict[str, Any], name: str) -> int:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidEvent(f"{name} must be a non-negative integer (epoch ms)")
    return value


def _require_dict(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InvalidEvent(f"expected a JSON object, got {type(data).__name__}")
    return data


@dataclass(slots=True)
class Trade:
    exchange: str
    symbol: str
    instrument: str
    base: str
    quote: str
    market: Market
    side: TakerSide
    price: float
    size: float
    notional_usd: float
    trade_id: str
    ts: int
    ts_recv: int

    @property
    def event_id(self) -> tuple[str, str]:
        return (self.exchange, self.trade_id)

    @classmethod
    def from_dict(cls, data: Any) -> Trade:
        d = _require_dict(data)
        return cls(
            exchange=_str(d, "exchange"),
            symbol=_str(d, "symbol"),
            instrument=_str(d, "instrument"),
            base=_str(d, "base"),
            quote=_str(d, "quote"),
            market=_choice(d, "market", MARKETS),  # type: ignore[arg-type]
            side=_choice(d, "side", TAKER_SIDES),  # type: ignore[arg-type]
            price=positive_finite(d.get("price"), "price"),
            size=positive_finite(d.get("size"), "size"),
            notional_usd=positive_finite(d.get("notional_usd"), "notional_usd"),
            trade_id=_str(d, "trade_id"),
            ts=_ts(d, "ts"),
            ts_recv=_ts(d, "ts_recv"),
        )


@dataclass(slots=True)
class Liquidation:
    exchange: str
    symbol: str
    instrument: str
    base: str
    quote: str
    market: Market
    liquidated_side: PositionSide
    price: float
    size: float
    notional_usd: float
    id: str
    ts: int
    ts_recv: int

    @classmethod
    def from_dict(cls, data: Any) -> Liquidation:
        d = _require_dict(data)
        return cls(
            exchange=_str(d, "exchange"),
            symbol=_str(d, "symbol"),
            instrument=_str(d, "instrument"),
            base=_str(d, "base"),
            quote=_str(d, "quote"),
            market=_choice(d, "market", MARKETS),  # type: ignore[arg-type]
            liquidated_side=_choice(d, "liquidated_side", POSITION_SIDES),  # type: ignore[arg-type]
            price=positive_finite(d.get("price"), "price"),
            size=positive_finite(d.get("size"), "size"),
            notional_usd=positive_finite(d.get("notional_usd"), "notional_usd"),
            id=_str(d, "id"),
            ts=_ts(d, "ts"),
            ts_recv=_ts(d, "ts_recv"),
        )


@dataclass(slots=True)
class TradeBar:
    """Exact aggregate of consecutive trades of one instrument within one event-time minute.

    ``id`` is deterministic (exchange, instrument, first and last trade id, count), so a bar
    that is published twice is recognised and counted once.
    """

    id: str
    exchange: str
    instrument: str
    base: str
    quote: str
    market: Market
    minute: int
    count: int
    volume: float
    notional_usd: float
    buy_notional_usd: float
    open: float
    high: float
    low: float
    close: float
    first_trade_id: str
    last_trade_id: str
    ts_first: int
    ts_last: int
    ts_recv: int

    @classmethod
    def from_dict(cls, data: Any) -> TradeBar:
        if type(data) is dict:
            bar = cls._well_formed(data)
            if bar is not None:
                return bar
        return cls._checked(data)

    @classmethod
    def _well_formed(cls, d: dict[str, Any]) -> TradeBar | None:
        """The bar of a message whose every field has its usual JSON type and is in range (the hot
        path: one type test per field); None sends anything else through :meth:`_checked`, which
        accepts the same values (and more spellings, e.g. integral prices) or says what is wrong."""
        get = d.get
        id_, exchange, instrument, base, quote = get("id"), get("exchange"), get("instrument"), get("base"), \
            get("quote")
        first_id, last_id, market = get("first_trade_id"), get("last_trade_id"), get("market")
        minute, count, ts_first, ts_last, ts_recv = get("minute"), get("count"), get("ts_first"), get("ts_last"), \
            get("ts_recv")
        volume, notional, buy = get("volume"), get("notional_usd"), get("buy_notional_usd")
        o, h, lo, c = get("open"), get("high"), get("low"), get("close")
        if not (type(id_) is str and id_ and type(exchange) is str and exchange and type(instrument) is str
                and instrument and type(base) is str and base and type(quote) is str and quote
                and type(first_id) is str and first_id and type(last_id) is str and last_id
                and type(market) is str and market in MARKETS):
            return None
        if not (type(minute) is int and minute >= 0 and type(count) is int and count >= 1
                and type(ts_first) is int and ts_first >= 0 and type(ts_last) is int and ts_last >= 0
                and type(ts_recv) is int and ts_recv >= 0):
            return None
        if not (type(volume) is float and 0.0 < volume < _INF and type(notional) is float and 0.0 < notional < _INF
                and type(buy) is float and 0.0 <= buy < _INF and type(o) is float and 0.0 < o < _INF
                and type(h) is float and 0.0 < h < _INF and type(lo) is float and 0.0 < lo < _INF
                and type(c) is float and 0.0 < c < _INF):
            return None
        return cls(id_, exchange, instrument, base, quote, market, minute, count, volume,  # type: ignore[arg-type]
                   notional, buy, o, h, lo, c, first_id, last_id, ts_first, ts_last, ts_recv)

    @classmethod
    def _checked(cls, data: Any) -> TradeBar:
        d = _require_dict(data)
        count = d.get("count")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise InvalidEvent("count must be a positive integer")
        buy = d.get("buy_notional_usd")
        if isinstance(buy, bool) or not isinstance(buy, (int, float)) or not math.isfinite(buy) or buy < 0:
            raise InvalidEvent("buy_notional_usd must be a finite number >= 0")
        return cls(
            id=_str(d, "id"),
            exchange=_str(d, "exchange"),
            instrument=_str(d, "instrument"),
            base=_str(d, "base"),
            quote=_str(d, "quote"),
            market=_choice(d, "market", MARKETS),  # type: ignore[arg-type]
            minute=_ts(d, "minute"),
            count=count,
            volume=positive_finite(d.get("volume"), "volume"),
            notional_usd=positive_finite(d.get("notional_usd"), "notional_usd"),
            buy_notional_usd=float(buy),
            open=positive_finite(d.get("open"), "open"),
            high=positive_finite(d.get("high"), "high"),
            low=positive_finite(d.get("low"), "low"),
            close=positive_finite(d.get("close"), "close"),
            first_trade_id=_str(d, "first_trade_id"),
            last_trade_id=_str(d, "last_trade_id"),
            ts_first=_ts(d, "ts_first"),
            ts_last=_ts(d, "ts_last"),
            ts_recv=_ts(d, "ts_recv"),
        )


@dataclass(slots=True)
class DeadLetter:
    """Input that could not be used. ``raw`` is the input as received (text; bytes that are not
    UTF-8 are kept as ``base64:``-prefixed base64)."""

    source: str
    raw: str
    reason: str
    ts_recv: int
