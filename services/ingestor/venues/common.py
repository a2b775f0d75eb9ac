"""Shared parsing checks of the venue adapters (pure; no I/O).

Every adapter of this package parses with the same small set of checks so that a field means the
same thing everywhere and the dead-letter reason classes are applied consistently:

- :func:`positive` — a decimal string or JSON number as a finite float > 0 (``bad_field`` when
  missing/mistyped, ``bad_value`` for NaN, infinities, zero or negatives);
- :func:`nonzero` — the same for signed sizes (Gate) where the sign carries the side;
- :func:`epoch_ms` / :func:`iso_ms` — timestamps as epoch milliseconds;
- :func:`text`, :func:`obj`, :func:`items` — required strings, objects and arrays;
- :class:`Adapter` — ``parse`` skeleton: size limit, orjson decoding, control frames, and a last
  guard that turns any unexpected type error into a ``bad_field`` :class:`FrameError`, so ``parse``
  never raises anything else whatever the input; plus the instrument lookup, the construction
  of canonical events with contract multipliers applied (:meth:`Adapter.trade`,
  :meth:`Adapter.liquidation`) and :meth:`Adapter.channel_of` for the runtime's staleness clocks.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import orjson

from services.common.events import Liquidation, PositionSide, TakerSide, Trade
from services.ingestor.instruments import load_instruments
from services.ingestor.venues.base import (
    BAD_FIELD,
    BAD_VALUE,
    INVALID_JSON,
    OVERSIZED,
    UNKNOWN_INSTRUMENT,
    ConnectionRules,
    Event,
    FrameError,
    Instrument,
    Subscription,
)

MAX_FRAME_CHARS = 1 << 20       # 1 MiB: far above any venue's largest public frame
CONTROL = "control"
_INF = float("inf")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_MAX_MS = 1 << 50          # year ~37,000: beyond it a "timestamp" is garbage
_JSON_ERROR = orjson.JSONDecodeError
_SHAPE_ERRORS = (TypeError, KeyError, IndexError, AttributeError, ValueError, OverflowError)


def _clip(value: Any) -> str:
    return repr(value)[:40]


def positive(value: Any, name: str) -> float:
    """``value`` (decimal string such as ``"0.001"`` or a JSON number) as a finite float > 0."""
    if value is True or value is False or value is None:
        raise FrameError(BAD_FIELD, f"{name} missing or not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise FrameError(BAD_FIELD, f"{name} is not a decimal: {_clip(value)}") from None
    if not 0.0 < number < _INF:          # false for NaN, +-inf, 0 and negatives
        raise FrameError(BAD_VALUE, f"{name} must be finite and > 0, got {_clip(value)}")
    return number


def nonzero(value: Any, name: str) -> float:
    """A signed decimal whose sign carries meaning: finite and not zero."""
    if value is True or value is False or value is None:
        raise FrameError(BAD_FIELD, f"{name} missing or not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise FrameError(BAD_FIELD, f"{name} is not a decimal: {_clip(value)}") from None
    if not -_INF < number < _INF or number == 0.0:
        raise FrameError(BAD_VALUE, f"{name} must be finite and non-zero, got {_clip(value)}")
    return number


def epoch_ms(value: Any, name: str) -> int:
    """An epoch-millisecond timestamp given as a JSON integer, a string of digits, or (fractional
    milliseconds, as Gate sends) a decimal number or string."""
    if value.__class__ is int:
        if 0 <= value < _MAX_MS:
            return int(value)
    elif isinstance(value, str) and value.isdigit() and len(value) < 16:
        return int(value)
    elif value.__class__ is float or value.__class__ is str:
        try:
            number = float(value)
        except ValueError:
            number = -1.0
        if 0.0 <= number < _MAX_MS:
            return int(number)
    raise FrameError(BAD_FIELD, f"{name} missing or not an epoch-ms timestamp: {_clip(value)}")


def seconds_ms(value: Any, name: str) -> int:
    """An epoch-seconds number (possibly fractional) as epoch milliseconds."""
    seconds = positive(value, name)
    if seconds > 1e11:
        raise FrameError(BAD_VALUE, f"{name} is not epoch seconds: {_clip(value)}")
    return int(seconds * 1000)


def iso_ms(value: Any, name: str) -> int:
    """An ISO-8601 UTC timestamp (``2025-01-27T10:00:00.123456Z``) as epoch milliseconds."""
    if not isinstance(value, str):
        raise FrameError(BAD_FIELD, f"{name} missing or not a timestamp string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise FrameError(BAD_FIELD, f"{name} is not an ISO-8601 timestamp: {_clip(value)}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        ms = (moment - _EPOCH) // _MS
    except OverflowError:
        raise FrameError(BAD_VALUE, f"{name} out of range: {_clip(value)}") from None
    if ms < 0:
        raise FrameError(BAD_VALUE, f"{name} before 1970: {_clip(value)}")
    return int(ms)


def text(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if value.__class__ is not str or not value:
        raise FrameError(BAD_FIELD, f"{name} missing or not a non-empty string")
    return str(value)


def ident(data: Mapping[str, Any], name: str) -> str:
    """A trade/order id given as a non-empty string or a non-negative integer, as a string."""
    value = data.get(name)
    if value.__class__ is str and value:
        return str(value)
    if value.__class__ is int and value >= 0:
        return str(value)
    raise FrameError(BAD_FIELD, f"{name} missing or not an id")


def obj(value: Any, name: str) -> dict[str, Any]:
    if value.__class__ is not dict:
        raise FrameError(BAD_FIELD, f"{name} missing or not an object")
    return value  # type: ignore[no-any-return]


def items(value: Any, name: str) -> list[Any]:
    """A JSON array of entries (a single object is accepted as a one-entry array)."""
    if value.__class__ is list:
        return value  # type: ignore[no-any-return]
    if value.__class__ is dict:
        return [value]
    raise FrameError(BAD_FIELD, f"{name} missing or not an array")


def choice(value: Any, mapping: Mapping[str, str], name: str) -> str:
    """``mapping[value]`` for one of the venue's enumerated field values, else ``bad_field``."""
    result = mapping.get(value) if value.__class__ is str else None
    if result is None:
        raise FrameError(BAD_FIELD, f"{name} must be one of {sorted(mapping)}, got {_clip(value)}")
    return result


def chunks(values: list[Any], size: int) -> list[list[Any]]:
    """``values`` split into lists of at most ``size`` (subscribe-request argument limits)."""
    return [values[start:start + size] for start in range(0, len(values), size)]


class Adapter:
    """Base of the adapters of this package (the :class:`~base.Venue` protocol).

    Subclasses set ``id``, ``rules``, ``sequential_trade_ids``, ``control_frames`` (non-JSON text
    frames such as ``pong`` that are ignored) and implement :meth:`events` on the decoded message.
    ``instruments`` defaults to the registry's table of the venue (snapshot or live refresh); tests
    and benchmarks pass their own.
    """

    id: ClassVar[str]
    rules: ClassVar[ConnectionRules]
    sequential_trade_ids: ClassVar[bool] = False
    control_frames: ClassVar[frozenset[str]] = frozenset()
    channel_markers: ClassVar[tuple[tuple[str, str | None], ...]] = ()
    max_frame_chars: ClassVar[int] = MAX_FRAME_CHARS

    def __init__(self, instruments: Mapping[str, Instrument] | None = None) -> None:
        self._fixed = instruments

    @property
    def instruments(self) -> Mapping[str, Instrument]:
        return self._fixed if self._fixed is not None else load_instruments(self.id)

    def connect_url(self, subscription: Subscription) -> str:
        return self.rules.url

    def channel_of(self, frame: str) -> str | None:
        """The stream a raw frame belongs to, for the runtime's per-stream staleness clocks:
        ``trades`` / ``liquidations``; None when it feeds every stream (Deribit's trades carry the
        liquidations); ``control`` for acks and heartbeat replies, which keep no stream alive."""
        for marker, channel in self.channel_markers:
            if marker in frame:
                return channel
        return CONTROL

    def subscribe_frames(self, subscription: Subscription) -> list[str]:
        raise NotImplementedError

    def events(self, message: Any, ts_recv: int) -> list[Event]:
        raise NotImplementedError

    def parse(self, frame: str | bytes, ts_recv: int) -> list[Event]:
        if len(frame) > self.max_frame_chars:
            raise FrameError(OVERSIZED, f"frame of {len(frame)} characters exceeds {self.max_frame_chars}")
        if frame in self.control_frames:
            return []
        try:
            message = orjson.loads(frame)
        except _JSON_ERROR:
            raise FrameError(INVALID_JSON, "frame is not valid JSON") from None
        try:
            return self.events(message, ts_recv)
        except FrameError:
            raise
        except _SHAPE_ERRORS as exc:   # a shape no explicit check anticipated: still a clean dead letter
            raise FrameError(BAD_FIELD, f"unexpected frame shape ({type(exc).__name__}: {str(exc)[:80]})") from None

    def instrument(self, symbol: Any) -> Instrument:
        inst = self.instruments.get(symbol) if symbol.__class__ is str else None
        if inst is None:
            if symbol.__class__ is not str:
                raise FrameError(BAD_FIELD, "instrument symbol missing or not a string")
            raise FrameError(UNKNOWN_INSTRUMENT, f"unknown instrument {_clip(symbol)}")
        return inst

    def trade(self, inst: Instrument, side: TakerSide, venue_price: float, venue_size: float,
              trade_id: str, ts: int, ts_recv: int) -> Trade:
        """A canonical trade: price per base unit, size in base units, USD notional."""
        price = inst.unit_price(venue_price)
        size = inst.base_size(venue_size, price)
        notional = inst.notional_usd(venue_size, price)
        if not (0.0 < size < _INF and 0.0 < notional < _INF):
            raise FrameError(BAD_VALUE, f"size/notional out of range ({size!r}, {notional!r})")
        return Trade(self.id, inst.symbol, inst.instrument, inst.base, inst.quote, inst.market, side,
                     price, size, notional, trade_id, ts, ts_recv)

    def liquidation(self, inst: Instrument, liquidated_side: PositionSide, venue_price: float,
                    venue_size: float, liquidation_id: str, ts: int, ts_recv: int) -> Liquidation:
        """A canonical liquidation; ``liquidated_side`` is the position that was closed."""
        price = inst.unit_price(venue_price)
        size = inst.base_size(venue_size, price)
        notional = inst.notional_usd(venue_size, price)
        if not (0.0 < size < _INF and 0.0 < notional < _INF):
            raise FrameError(BAD_VALUE, f"size/notional out of range ({size!r}, {notional!r})")
        return Liquidation(self.id, inst.symbol, inst.instrument, inst.base, inst.quote, inst.market,
                           liquidated_side, price, size, notional, f"{self.id}:{liquidation_id}", ts, ts_recv)
