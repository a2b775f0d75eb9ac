"""Shared parsing checks of the venue adapters (pure; no I/O; instrument tables are handed in).

Every adapter of this package parses with the same small set of checks so that a field means the
same thing everywhere and the dead-letter reason classes are applied consistently:

- :func:`positive` — a decimal string or JSON number as a finite float > 0 (``bad_field`` when
  missing/mistyped, ``bad_value`` for NaN, infinities, zero or negatives);
- :func:`nonzero` — the same for signed sizes (Gate) where the sign carries the side;
- :func:`epoch_ms` / :func:`iso_ms` — timestamps as epoch milliseconds;
- :func:`text`, :func:`obj`, :func:`items` — required strings, objects and arrays;
- :func:`make_instrument` / :func:`normalized_name` — instruments from the venues' REST fields;
- :meth:`Adapter.rows` — the rows of a multi-row frame one by one: a bad row becomes a
  :class:`~base.RowError` (dead-lettered alone, as a one-row frame of the venue's format) and the
  frame's other rows still count;
- :class:`Adapter` — ``parse`` skeleton: size limit, orjson decoding, control frames, and a last
  guard that turns any unexpected type error into a ``bad_field`` :class:`FrameError`, so ``parse``
  never raises anything else whatever the input (hot loops rely on it: a trade row that is not an
  object fails on ``row.get`` and lands there); plus the instrument lookup, the construction
  of canonical events with contract multipliers applied (:meth:`Adapter.trade`,
  :meth:`Adapter.liquidation`) and :meth:`Adapter.channel_of` for the runtime's staleness clocks.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import orjson

from services.common.events import Liquidation, PositionSide, TakerSide, Trade
from services.ingestor.venues.base import (
    BAD_FIELD,
    BAD_VALUE,
    INVALID_JSON,
    OVERSIZED,
    UNKNOWN_INSTRUMENT,
    ConnectionRules,
    ContractKind,
    Event,
    FrameError,
    Instrument,
    Parsed,
    RowError,
    Subscription,
)

MAX_FRAME_CHARS = 1 << 20       # 1 MiB: far above any venue's largest public frame
CONTROL = "control"
_CONTROL_MAX_CHARS = 16         # non-JSON control frames (``pong``) are short
_INF = float("inf")
_NAN = float("nan")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_INT64 = 1 << 63
_MAX_MS = 1 << 50          # year ~37,000: beyond it a "timestamp" is garbage
_JSON_ERROR = orjson.JSONDecodeError
_THOUSAND_PREFIX = re.compile(r"^(1000+)([A-Z0-9]+)$")
_THOUSAND_SUFFIX = re.compile(r"^([A-Z][A-Z0-9]*?)(1000+)$")
_SHAPE_ERRORS = (TypeError, KeyError, IndexError, AttributeError, ValueError, OverflowError)


_Spec = tuple[Instrument, float, float, bool]    # instrument, price_scale, contract_size, inverse
RowHandler = Callable[[Any, int, Parsed], None]   # (row, ts_recv, out): appends the row's events to out


def _clip(value: Any) -> str:
    return repr(value)[:40]



def _decimal(value: Any, name: str) -> float:
    if value is True or value is False or value is None:
        raise FrameError(BAD_FIELD, f"{name} missing or not a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise FrameError(BAD_FIELD, f"{name} is not a decimal: {_clip(value)}") from None


def positive(value: Any, name: str) -> float:
    """``value`` (decimal string such as ``"0.001"`` or a JSON number) as a finite float > 0."""
    number = _decimal(value, name)
    if not 0.0 < number < _INF:          # false for NaN, +-inf, 0 and negatives
        raise FrameError(BAD_VALUE, f"{name} must be finite and > 0, got {_clip(value)}")
    return number


def nonzero(value: Any, name: str) -> float:
    """A signed decimal whose sign carries meaning: finite and not zero."""
    number = _decimal(value, name)
    if not -_INF < number < _INF or number == 0.0:
        raise FrameError(BAD_VALUE, f"{name} must be finite and non-zero, got {_clip(value)}")
    return number


def epoch_ms(value: Any, name: str) -> int:
    """An epoch-millisecond timestamp given as a JSON integer, a string of digits, or (fractional
    milliseconds, as Gate sends) a decimal number or string."""
    if value.__class__ is int:
        if 0 <= value < _MAX_MS:
            return value  # type: ignore[no-any-return]
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
    """An ISO-8601 UTC timestamp (``2025-01-27T10:00:00.123456Z``) as epoch milliseconds.

    Fast path for the venues' fixed ``YYYY-MM-DDTHH:MM:SS[.fff...]Z`` form: the minute prefix is
    converted once and cached, seconds and milliseconds are read as digits (exact, no float).
    """
    if value.__class__ is str and len(value) <= 32 and value[-1:] == "Z" and value[16:17] == ":":
        minute = _MINUTES.get(value[:16])
        seconds, fraction = value[17:19], value[20:-1]
        if (minute is not None and seconds.isdigit() and value[19] in ".Z" and seconds < "60"
                and (fraction.isdigit() or (not fraction and value[19] == "Z"))):
            return minute + int(seconds) * 1000 + (int(fraction[:3].ljust(3, "0")) if fraction else 0)
    ms = _iso_ms_slow(value, name)     # str from here on; learn the minute of the UTC form
    if len(value) > 19 and value[10] == "T" and value[16] == ":" and value[-1] == "Z" and len(_MINUTES) < 100_000:
        _MINUTES[value[:16]] = ms - ms % 60_000
    return ms


_MINUTES: dict[str, int] = {}     # "2025-01-27T10:00" -> epoch ms of that UTC minute


def _iso_ms_slow(value: Any, name: str) -> int:
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


def sequence_id(data: Mapping[str, Any], name: str) -> str:
    """A sequential trade id (gap detection applies): a non-negative integer within int64, given as a
    JSON integer or a string of decimal digits; returned as its decimal string."""
    value = data.get(name)
    if value.__class__ is str and value.isdigit() and len(value) <= 19 and int(value) < _INT64:
        return str(int(value))
    if value.__class__ is int and 0 <= value < _INT64:
        return str(value)
    raise FrameError(BAD_FIELD, f"{name} missing or not a sequential integer id: {_clip(value)}")


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


def normalized_name(base: str, quote: str, market: str, expiry_ms: int | None = None) -> str:
    """``BASE-QUOTE-PERP`` | ``BASE-QUOTE-YYMMDD`` | ``BASE-QUOTE``."""
    if market == "perp":
        return f"{base}-{quote}-PERP"
    if market == "future" and expiry_ms:
        return f"{base}-{quote}-{datetime.fromtimestamp(expiry_ms / 1000, UTC):%y%m%d}"
    return f"{base}-{quote}"


def split_thousands(venue_base: str) -> tuple[str, float]:
    """``1000PEPE`` -> (``PEPE``, 1000.0); ``SHIB1000`` -> (``SHIB``, 1000.0); ``BTC`` -> (``BTC``, 1.0)."""
    for pattern, base_group, scale_group in ((_THOUSAND_PREFIX, 2, 1), (_THOUSAND_SUFFIX, 1, 2)):
        match = pattern.match(venue_base)
        if match:
            return match.group(base_group), float(match.group(scale_group))
    return venue_base, 1.0


def make_instrument(venue: str, symbol: str, venue_base: str, quote: str, market: str, kind: ContractKind,
                    contract_size: float = 1.0, expiry_ms: int | None = None) -> Instrument:
    """An instrument from a venue's REST fields: thousand-unit bases (``1000PEPE``) become a price
    scale and contract multiplier, the name is normalized."""
    base, scale = split_thousands(venue_base)
    return Instrument(venue=venue, symbol=symbol, instrument=normalized_name(base, quote, market, expiry_ms),
                      base=base, quote=quote, market=market,  # type: ignore[arg-type]
                      kind=kind, contract_size=contract_size * scale, price_scale=scale)


def _dump_row(tree: Any) -> str:
    try:
        return orjson.dumps(tree).decode()
    except (orjson.JSONEncodeError, TypeError):     # e.g. an integer beyond 64 bits
        return repr(tree)[:MAX_FRAME_CHARS]


def one_row(message: dict[str, Any], key: str) -> Callable[[Any], Any]:
    """``row -> message`` with its array ``key`` holding only ``row`` (a bad row's dead letter)."""
    return lambda row: {**message, key: [row]}


def number_repeats(events: list[Event], start: int) -> None:
    """Ids of liquidation rows that carry none are built from their content; identical rows in one
    push are distinct liquidations, so the n-th repeat (n >= 1) of an id among ``events[start:]``
    gets the suffix ``:n``. The ids depend only on the frame: a redelivered frame gets the same."""
    seen: dict[str, int] = {}
    for event in events[start:]:
        if isinstance(event, Liquidation):
            repeat = seen.get(event.id, 0)
            seen[event.id] = repeat + 1
            if repeat:
                event.id = f"{event.id}:{repeat}"


def liquidation_symbols(subscription: Subscription, instruments: Mapping[str, Instrument]) -> tuple[str, ...]:
    """The symbols whose liquidations to stream on venues that subscribe them per symbol: the
    explicit ones, else (``all_liquidations``) every listed instrument of the venue's table — all
    that can be normalized, on the first planned connection, whatever the trade chunks are. Empty
    means "every instrument" where the venue has an all-market form (Gate ``!all``, BitMEX
    ``liquidation``)."""
    if subscription.liquidations:
        return subscription.liquidations
    if not subscription.all_liquidations:
        return ()
    return tuple(symbol for symbol, inst in instruments.items() if inst.listed)


def op_subscribe(args: list[Any], per_request: int) -> list[str]:
    """``{"op":"subscribe","args":[...]}`` requests (Bybit, OKX, BitMEX) of at most ``per_request`` args."""
    return [orjson.dumps({"op": "subscribe", "args": args[start:start + per_request]}).decode()
            for start in range(0, len(args), per_request)]


class Adapter:
    """Base of the adapters of this package (the :class:`~base.Venue` protocol).

    Subclasses set ``id``, ``rules``, ``sequential_trade_ids``, ``control_frames`` (non-JSON text
    frames such as ``pong`` that are ignored) and implement :meth:`events` on the decoded message.
    The caller hands in the venue's instrument table (``venues.registry.venues(tables)``: the
    snapshot or its live refresh; tests and benchmarks pass their own): no adapter looks one up.
    """

    id: ClassVar[str]
    rules: ClassVar[ConnectionRules]
    sequential_trade_ids: ClassVar[bool] = False
    control_frames: ClassVar[frozenset[str]] = frozenset()
    channel_markers: ClassVar[tuple[tuple[str, str | None], ...]] = ()
    max_frame_chars: ClassVar[int] = MAX_FRAME_CHARS
    rest_instrument_urls: ClassVar[tuple[str, ...]] = ()     # the live refresh's endpoints (none: snapshot only)

    def __init__(self, instruments: Mapping[str, Instrument]) -> None:
        self._instruments = instruments
        self._specs: dict[str, _Spec] = {symbol: (inst, inst.price_scale, inst.contract_size, inst.kind == "inverse")
                                         for symbol, inst in instruments.items()}

    @property
    def instruments(self) -> Mapping[str, Instrument]:
        """The venue's instrument table, as handed in by the caller (snapshot or refreshed)."""
        return self._instruments

    def connect_url(self, subscription: Subscription) -> str:
        return self.rules.url

    @staticmethod
    def parse_rest_instruments(body: Any) -> list[Instrument]:
        """The instruments of one response body of :attr:`rest_instrument_urls` (pure)."""
        return []

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

    def events(self, message: Any, ts_recv: int, out: Parsed) -> None:
        """Append the events (and bad rows) of the decoded ``message`` to ``out``."""
        raise NotImplementedError

    def parse_frame(self, frame: str | bytes, ts_recv: int) -> Parsed:
        length = len(frame)
        if length > self.max_frame_chars:
            raise FrameError(OVERSIZED, f"frame of {length} characters exceeds {self.max_frame_chars}")
        out = Parsed()
        if length <= _CONTROL_MAX_CHARS and frame in self.control_frames:
            return out
        message = self.decode(frame)
        try:
            self.events(message, ts_recv, out)
        except FrameError:
            raise
        except _SHAPE_ERRORS as exc:   # a shape no explicit check anticipated: still a clean dead letter
            raise FrameError(BAD_FIELD, f"unexpected frame shape ({type(exc).__name__}: {str(exc)[:80]})") from None
        return out

    def parse(self, frame: str | bytes, ts_recv: int) -> list[Event]:
        parsed = self.parse_frame(frame, ts_recv)
        if parsed.rejected:
            first = parsed.rejected[0]
            raise FrameError(first.reason_class, first.message)
        return parsed.events

    def decode(self, frame: str | bytes) -> Any:
        """The frame's JSON (venues with binary or compressed frames override this)."""
        try:
            return orjson.loads(frame)
        except _JSON_ERROR:
            raise FrameError(INVALID_JSON, "frame is not valid JSON") from None

    @staticmethod
    def rows(out: Parsed, rows: Any, name: str, handle: RowHandler, ts_recv: int,
             one_row_frame: Callable[[Any], Any]) -> None:
        """``handle`` every entry of the array ``rows`` (``name`` in messages); a row that raises is
        rolled back and recorded in ``out.rejected`` with ``one_row_frame(row)`` as its raw frame."""
        data, events = items(rows, name), out.events
        start = len(events)
        try:                          # fast path: every row is good
            for row in data:
                handle(row, ts_recv, out)
            return
        except _SHAPE_ERRORS:         # FrameError is a ValueError: judge the rows one by one
            del events[start:]
            for stale in [at for at in out.spans if at >= start]:
                del out.spans[stale]
        for index, row in enumerate(data):
            mark = len(events)
            try:
                handle(row, ts_recv, out)
            except _SHAPE_ERRORS as exc:
                del events[mark:]
                for stale in [at for at in out.spans if at >= mark]:
                    del out.spans[stale]
                reason = exc.reason_class if isinstance(exc, FrameError) else BAD_FIELD
                message = str(exc) if isinstance(exc, FrameError) else \
                    f"unexpected row shape ({type(exc).__name__}: {str(exc)[:80]})"
                out.rejected.append(RowError(index, reason, message, _dump_row(one_row_frame(row))))

    def instrument(self, symbol: Any) -> Instrument:
        inst = self.instruments.get(symbol) if symbol.__class__ is str else None
        if inst is None:
            if symbol.__class__ is not str:
                raise FrameError(BAD_FIELD, "instrument symbol missing or not a string")
            raise FrameError(UNKNOWN_INSTRUMENT, f"unknown instrument {_clip(symbol)}")
        return inst

    def _amounts(self, symbol: Any, price: Any, size: Any) -> tuple[Instrument, float, float, float]:
        """(instrument, price per base unit, size in base units, USD notional) of raw venue fields.

        The hot path of every adapter, so it is one function: the checks of :func:`positive` and
        the conversions of :meth:`Instrument.unit_price` / ``base_size`` / ``notional_usd`` (same
        formulas; ``test_common`` asserts they agree) inlined. Anything the fast checks do not
        accept is handed to the granular checks, which raise the precise :class:`FrameError`.
        """
        spec = self._specs.get(symbol) if symbol.__class__ is str else None
        if spec is None:
            self.instrument(symbol)                       # raises bad_field / unknown_instrument
            raise FrameError(UNKNOWN_INSTRUMENT, f"unknown instrument {_clip(symbol)}")
        price_cls, size_cls = price.__class__, size.__class__
        try:
            p = float(price) if price_cls is str else price if price_cls is float or price_cls is int else _NAN
            q = float(size) if size_cls is str else size if size_cls is float or size_cls is int else _NAN
        except ValueError:
            p = q = _NAN
        if not (0.0 < p < _INF and 0.0 < q < _INF):
            positive(price, "price")
            positive(size, "size")
        inst, scale, contract_size, inverse = spec
        p = p / scale                                     # float, also for integer JSON prices
        if inverse:
            notional = q * contract_size
            base = notional / p
        else:
            base = q * contract_size
            notional = base * p
        if not (0.0 < base < _INF and 0.0 < notional < _INF):
            raise FrameError(BAD_VALUE, f"size/notional out of range ({base!r}, {notional!r})")
        return inst, p, base, notional

    def trade(self, symbol: Any, side: TakerSide, price: Any, size: Any, trade_id: str, ts: int,
              ts_recv: int) -> Trade:
        """A canonical trade from the venue's raw symbol, price and size fields (strings or numbers)."""
        inst, p, base, notional = self._amounts(symbol, price, size)
        return Trade(self.id, inst.symbol, inst.instrument, inst.base, inst.quote, inst.market, side,
                     p, base, notional, trade_id, ts, ts_recv)

    def liquidation(self, symbol: Any, liquidated_side: PositionSide, price: Any, size: Any,
                    liquidation_id: str, ts: int, ts_recv: int) -> Liquidation:
        """A canonical liquidation; ``liquidated_side`` is the position that was closed."""
        inst, p, base, notional = self._amounts(symbol, price, size)
        return Liquidation(self.id, inst.symbol, inst.instrument, inst.base, inst.quote, inst.market,
                           liquidated_side, p, base, notional, f"{self.id}:{liquidation_id}", ts, ts_recv)
