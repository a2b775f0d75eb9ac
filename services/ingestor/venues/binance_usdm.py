"""Binance USD-M futures: ``<symbol>@aggTrade`` and the all-market ``!forceOrder@arr`` stream.

Frames arrive in the combined-stream envelope ``{"stream": "btcusdt@aggTrade", "data": {...}}``
(raw single-stream payloads without the envelope are accepted too).

- aggTrade ``{"e":"aggTrade","E","a","s","p","q","f","l","T","m"}``: ``m`` = "the buyer is the
  maker", so the taker sold when ``m`` is true. ``a`` (aggregate trade id) is sequential per symbol.
- forceOrder ``{"e":"forceOrder","E","o":{"s","S","o","f","q","p","ap","X","l","z","T"}}``: ``S`` is
  the side of the liquidation order; ``SELL`` closes a long position. Price is the average fill
  price ``ap`` (``p`` when ``ap`` is zero), size the accumulated filled quantity ``z``.
- Control frames (``{"result": null, "id": 1}`` subscribe replies) are ignored. Binance sends
  websocket-level pings (every 3 min); the websockets client answers them itself.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from services.common.events import Liquidation, Trade
from services.ingestor.instruments import load_instruments
from services.ingestor.venues.base import (
    BAD_FIELD,
    BAD_VALUE,
    INVALID_JSON,
    UNKNOWN_EVENT,
    UNKNOWN_INSTRUMENT,
    ConnectionRules,
    Event,
    FrameError,
    Heartbeat,
    Instrument,
    Subscription,
)

VENUE_ID = "binance-usdm"
WS_BASE = "wss://fstream.binance.com"
ALL_LIQUIDATIONS_STREAM = "!forceOrder@arr"


def _positive(value: Any, name: str) -> float:
    """A Binance decimal string (or number) as a finite float > 0."""
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise FrameError(BAD_FIELD, f"{name} is not a decimal: {value[:40]!r}") from None
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        raise FrameError(BAD_FIELD, f"{name} missing or not a decimal string")
    if not math.isfinite(number) or number <= 0:
        raise FrameError(BAD_VALUE, f"{name} must be finite and > 0, got {value!r}")
    return number


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FrameError(BAD_FIELD, f"{name} missing or not a non-negative integer")
    return value


def _symbol(value: Any, instruments: dict[str, Instrument]) -> Instrument:
    if not isinstance(value, str):
        raise FrameError(BAD_FIELD, "s (symbol) missing or not a string")
    inst = instruments.get(value)
    if inst is None:
        raise FrameError(UNKNOWN_INSTRUMENT, f"unknown instrument {value[:40]!r}")
    return inst


class BinanceUsdm:
    id = VENUE_ID
    sequential_trade_ids = True
    rules = ConnectionRules(
        url=WS_BASE,
        heartbeat=Heartbeat(payload=None, interval=180.0),
        max_streams_per_connection=200,        # Binance allows 1024; keeps the URL short
        max_messages_per_second=10.0,          # Binance: 10 incoming messages per second per connection
        rotate_after_seconds=23.5 * 3600,      # Binance closes every connection after 24 h
        stale_after_seconds={"trades": 60.0, "liquidations": 3600.0},
    )

    def __init__(self, instruments: dict[str, Instrument] | None = None) -> None:
        self._fixed = instruments

    @property
    def instruments(self) -> dict[str, Instrument]:
        return self._fixed if self._fixed is not None else load_instruments(VENUE_ID)

    @staticmethod
    def streams(subscription: Subscription) -> list[str]:
        names = [f"{symbol.lower()}@aggTrade" for symbol in subscription.trades]
        if subscription.all_liquidations:
            names.append(ALL_LIQUIDATIONS_STREAM)
        names.extend(f"{symbol.lower()}@forceOrder" for symbol in subscription.liquidations)
        return names

    def connect_url(self, subscription: Subscription) -> str:
        return f"{self.rules.url}/stream?streams={'/'.join(self.streams(subscription))}"

    @staticmethod
    def channel_of(frame: str) -> str | None:
        """The channel of a combined-stream frame from its envelope (cheap; used for staleness)."""
        head = frame[:64]
        if "@aggTrade" in head:
            return "trades"
        if "forceOrder" in head:
            return "liquidations"
        return None

    def subscribe_frames(self, subscription: Subscription) -> list[str]:
        return []   # the combined-stream URL selects the streams

    def parse(self, frame: str, ts_recv: int) -> list[Event]:
        try:
            message = orjson.loads(frame)
        except orjson.JSONDecodeError:
            raise FrameError(INVALID_JSON, "frame is not valid JSON") from None
        if not isinstance(message, dict):
            raise FrameError(UNKNOWN_EVENT, f"expected a JSON object, got {type(message).__name__}")
        data = message.get("data", message) if "stream" in message else message
        if not isinstance(data, dict):
            raise FrameError(BAD_FIELD, "data is not an object")
        kind = data.get("e")
        if kind == "aggTrade":
            return [self._trade(data, ts_recv)]
        if kind == "forceOrder":
            return [self._liquidation(data, ts_recv)]
        if kind is None and "result" in data and "id" in data:
            return []   # reply to SUBSCRIBE / LIST_SUBSCRIPTIONS
        raise FrameError(UNKNOWN_EVENT, f"unknown event type {str(kind)[:40]!r}")

    def _trade(self, d: dict[str, Any], ts_recv: int) -> Trade:
        inst = _symbol(d.get("s"), self.instruments)
        price = inst.unit_price(_positive(d.get("p"), "p"))
        qty = _positive(d.get("q"), "q")
        maker = d.get("m")
        if not isinstance(maker, bool):
            raise FrameError(BAD_FIELD, "m (buyer is maker) missing or not a boolean")
        return Trade(
            exchange=VENUE_ID, symbol=inst.symbol, instrument=inst.instrument, base=inst.base,
            quote=inst.quote, market=inst.market, side="sell" if maker else "buy", price=price,
            size=inst.base_size(qty, price), notional_usd=inst.notional_usd(qty, price),
            trade_id=str(_int(d.get("a"), "a")), ts=_int(d.get("T"), "T"), ts_recv=ts_recv,
        )

    def _liquidation(self, d: dict[str, Any], ts_recv: int) -> Liquidation:
        order = d.get("o")
        if not isinstance(order, dict):
            raise FrameError(BAD_FIELD, "o (order) missing or not an object")
        inst = _symbol(order.get("s"), self.instruments)
        side = order.get("S")
        if side not in ("SELL", "BUY"):
            raise FrameError(BAD_FIELD, f"S must be SELL or BUY, got {str(side)[:20]!r}")
        avg = order.get("ap")
        unfilled_avg = avg is None or (isinstance(avg, str) and avg.strip("0.") == "") or avg == 0
        price = inst.unit_price(_positive(order.get("p"), "p") if unfilled_avg else _positive(avg, "ap"))
        filled = order.get("z")
        qty = _positive(filled, "z")
        ts = _int(order.get("T"), "T")
        return Liquidation(
            exchange=VENUE_ID, symbol=inst.symbol, instrument=inst.instrument, base=inst.base,
            quote=inst.quote, market=inst.market, liquidated_side="long" if side == "SELL" else "short",
            price=price, size=inst.base_size(qty, price), notional_usd=inst.notional_usd(qty, price),
            id=f"{VENUE_ID}:{inst.symbol}:{ts}:{side}:{filled}", ts=ts, ts_recv=ts_recv,
        )


VENUE = BinanceUsdm()
