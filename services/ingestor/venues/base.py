"""The adapter contract every venue module implements (pure: no I/O here).

A venue adapter knows everything about its exchange:

- how to **subscribe** (the exact text frames to send for a set of symbols and channels),
- how to **parse** one received text frame into canonical events
  (:class:`~services.common.events.Trade` / :class:`~services.common.events.Liquidation`):
  a :class:`FrameError` with a reason class for a frame it cannot use at all, a :class:`RowError`
  per bad row of a multi-row frame whose other rows still count (:class:`Parsed`),
- its **connection rules**: websocket URL, app-level heartbeat, per-stream staleness thresholds,
  streams per connection, connection lifetime (rotation), whether trade ids are sequential,
- its **instruments**: the public REST endpoints and the parser of their answers.

Normalization is the same for every venue: ``Trade.side`` is the taker side; ``Liquidation.
liquidated_side`` is the position that was closed (``long``/``short``), whatever the venue's own
field means. ``size`` is in base units (contract multipliers applied) and ``notional_usd`` is
computed by :class:`Instrument` for linear, inverse and quanto contracts alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from services.common.events import Liquidation, Market, Trade

Event = Trade | Liquidation
ContractKind = Literal["spot", "linear", "inverse", "quanto"]

# Dead-letter reason classes (the ``reason`` label of cryptopulse_ingestor_deadletters_total).
INVALID_JSON = "invalid_json"
UNKNOWN_EVENT = "unknown_event"
BAD_FIELD = "bad_field"
BAD_VALUE = "bad_value"
UNKNOWN_INSTRUMENT = "unknown_instrument"
OVERSIZED = "oversized"
ADAPTER_ERROR = "adapter_error"   # no adapter for the frame's venue, or an adapter raised something else
REASON_CLASSES = (INVALID_JSON, UNKNOWN_EVENT, BAD_FIELD, BAD_VALUE, UNKNOWN_INSTRUMENT, OVERSIZED, ADAPTER_ERROR)


class FrameError(ValueError):
    """A frame that cannot be used. ``reason_class`` is one of :data:`REASON_CLASSES`;
    ``str(exc)`` is the human-readable reason that goes into the dead letter."""

    def __init__(self, reason_class: str, message: str) -> None:
        super().__init__(message)
        self.reason_class = reason_class


@dataclass(frozen=True, slots=True)
class RowError:
    """One unusable row of a multi-row frame: dead-lettered on its own while the frame's good rows
    are published. ``raw`` is the frame with its rows cut down to this one (the venue's own format,
    so a dead letter can be replayed through the adapter once the cause is fixed)."""

    index: int
    reason_class: str
    message: str
    raw: str


class Parsed:
    """What one frame yields: its events, its bad rows, and for venues that aggregate fills under
    one id (OKX ``count``) how many sequential trade ids an event covers (event index -> count,
    only when > 1), so gap detection does not mistake the covered ids for missing trades.
    (A plain slotted class: one is made per frame on the hot path.)"""

    __slots__ = ("events", "rejected", "spans")

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.rejected: list[RowError] = []
        self.spans: dict[int, int] = {}


@dataclass(frozen=True, slots=True)
class Instrument:
    """One tradable instrument of a venue, from the bundled snapshot or the venue's REST API.

    ``contract_size`` is what one unit of the venue's size field is worth:
    - spot / linear: base units per contract (1.0 when the venue quotes size in base units);
    - inverse: USD (quote) per contract, e.g. 100 for BTC-USD-SWAP on OKX;
    - quanto: the multiplier in base units per contract (BitMEX/Gate quanto; settled in another coin).

    ``price_scale`` is how many base units the venue's price field is quoted for: 1000 for
    Binance ``1000PEPEUSDT`` / Bybit ``SHIB1000USDT`` (price of 1000 PEPE), else 1. Canonical
    prices are per base unit: convert with :meth:`unit_price` first, then pass that price to
    :meth:`base_size` / :meth:`notional_usd`. ``listed`` is False for snapshot entries the venue
    did not list on the as-of date (kept so the scenario universe is complete).
    """

    venue: str
    symbol: str          # venue-native, exactly as in the venue's frames (e.g. BTCUSDT, BTC-USDT-SWAP)
    instrument: str      # normalized: BASE-QUOTE-PERP | BASE-QUOTE-YYMMDD | BASE-QUOTE (spot)
    base: str
    quote: str
    market: Market
    kind: ContractKind = "linear"
    contract_size: float = 1.0
    price_scale: float = 1.0
    listed: bool = True

    def unit_price(self, venue_price: float) -> float:
        """The venue's price field as the price of one base unit."""
        return venue_price / self.price_scale if self.price_scale != 1.0 else venue_price

    def base_size(self, venue_size: float, price: float) -> float:
        """The venue's size field converted to base units (``price``: per base unit)."""
        if self.kind == "inverse":
            return venue_size * self.contract_size / price
        return venue_size * self.contract_size

    def notional_usd(self, venue_size: float, price: float) -> float:
        """USD value of ``venue_size`` at ``price`` (quotes in ``common.events.USD_QUOTES`` count as 1 USD)."""
        if self.kind == "inverse":
            return venue_size * self.contract_size
        return self.base_size(venue_size, price) * price


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The venue's app-level keepalive. ``payload`` is sent every ``interval`` seconds (None: the
    venue pings us and the websocket library answers); ``pong`` recognises the venue's reply."""

    payload: str | None
    interval: float
    pong_prefixes: tuple[str, ...] = ()

    def is_pong(self, frame: str) -> bool:
        return any(frame.startswith(prefix) for prefix in self.pong_prefixes)


@dataclass(frozen=True, slots=True)
class Subscription:
    """What to stream from a venue: symbols (venue-native) per channel kind."""

    trades: tuple[str, ...] = ()
    liquidations: tuple[str, ...] = ()     # empty + ``all_liquidations`` for all-market streams
    all_liquidations: bool = True


@dataclass(frozen=True, slots=True)
class ConnectionRules:
    url: str
    heartbeat: Heartbeat
    max_streams_per_connection: int = 200
    max_messages_per_second: float = 5.0        # outbound (subscribe) message rate limit
    rotate_after_seconds: float | None = None   # e.g. Binance closes connections after 24 h
    stale_after_seconds: dict[str, float] = field(default_factory=lambda: {"trades": 60.0, "liquidations": 3600.0})


class Venue(Protocol):
    """What every venue's adapter is, built with the venue's instrument table (``registry.get``).

    Optional extra: ``channel_of(frame: str) -> str | None`` ("trades"/"liquidations"), a cheap
    look at a frame that lets the runtime apply per-stream staleness thresholds; without it any
    frame counts as activity of every stream of its connection.
    """

    @property
    def id(self) -> str:
        """Stable id used in events, metrics and dead letters (e.g. ``binance-usdm``)."""
        ...

    @property
    def rules(self) -> ConnectionRules:
        """The websocket endpoint (``rules.url``) and the connection rules."""
        ...

    @property
    def sequential_trade_ids(self) -> bool:
        """Gap detection applies (Binance aggTrade ``a``, OKX ``tradeId``)."""
        ...

    @property
    def rest_instrument_urls(self) -> tuple[str, ...]:
        """The public REST instrument endpoints of the live refresh (empty: snapshot only)."""
        ...

    def parse_rest_instruments(self, body: Any) -> list[Instrument]:
        """The instruments of one (decoded JSON) response of ``rest_instrument_urls``; pure."""
        ...

    def subscribe_frames(self, subscription: Subscription) -> list[str]:
        """The exact text frames to send after connecting (or the empty list when the URL itself
        selects the streams, as with Binance combined streams; see :meth:`connect_url`)."""
        ...

    def connect_url(self, subscription: Subscription) -> str:
        """The websocket URL for this subscription (usually ``rules.url``)."""
        ...

    def parse_frame(self, frame: str, ts_recv: int) -> Parsed:
        """Events and bad rows of one text frame (no events and no rows for acks, pongs and other
        control frames). Raises :class:`FrameError` (never another exception) when the frame as a
        whole is unusable: invalid JSON, unknown event type, a broken envelope; a bad row of a
        multi-row frame (missing/mistyped fields, NaN/inf/<= 0 prices or sizes, unknown
        instruments) is a :class:`RowError` and the other rows still count."""
        ...

    def parse(self, frame: str, ts_recv: int) -> list[Event]:
        """Strict form of :meth:`parse_frame`: the events, or the first bad row's :class:`FrameError`."""
        ...
