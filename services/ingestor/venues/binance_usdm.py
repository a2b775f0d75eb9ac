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

The checks and conversions are the package's shared ones (:mod:`.common`), so a field means the
same thing and gets the same dead-letter reason class on every venue.
"""

from __future__ import annotations

from typing import Any

from services.common.events import PositionSide, TakerSide
from services.ingestor.venues.base import (
    BAD_FIELD,
    UNKNOWN_EVENT,
    ConnectionRules,
    FrameError,
    Heartbeat,
    Instrument,
    Parsed,
    Subscription,
)
from services.ingestor.venues.common import CONTROL, Adapter, epoch_ms, make_instrument, obj, sequence_id

VENUE_ID = "binance-usdm"
WS_BASE = "wss://fstream.binance.com"
ALL_LIQUIDATIONS_STREAM = "!forceOrder@arr"
TAKER: dict[Any, TakerSide] = {True: "sell", False: "buy"}            # m = "the buyer is the maker"
LIQUIDATED: dict[Any, PositionSide] = {"SELL": "long", "BUY": "short"}  # S = side of the liquidation order


def _filled_average(order: dict[str, Any]) -> Any:
    """``ap`` (average fill price), or the order price ``p`` when nothing was averaged (``"0"``)."""
    average = order.get("ap")
    if average is None or average == 0 or (average.__class__ is str and average.strip("0.") == ""):
        return order.get("p")
    return average


class BinanceUsdm(Adapter):
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
    channel_markers = (("@aggTrade", "trades"), ("forceOrder", "liquidations"), ('"result"', CONTROL))
    rest_instrument_urls = ("https://fapi.binance.com/fapi/v1/exchangeInfo",)

    @staticmethod
    def parse_rest_instruments(body: Any) -> list[Instrument]:
        """``GET /fapi/v1/exchangeInfo``: perpetuals and dated futures in ``TRADING``."""
        out: list[Instrument] = []
        for item in body.get("symbols", []) if isinstance(body, dict) else []:
            contract = item.get("contractType")
            if item.get("status") != "TRADING" or contract not in ("PERPETUAL", "CURRENT_QUARTER", "NEXT_QUARTER"):
                continue
            market = "perp" if contract == "PERPETUAL" else "future"
            expiry = int(item.get("deliveryDate", 0)) if market == "future" else None
            out.append(make_instrument(VENUE_ID, item["symbol"], item["baseAsset"], item["quoteAsset"], market,
                                       "linear", expiry_ms=expiry))
        return out

    @staticmethod
    def streams(subscription: Subscription) -> list[str]:
        names = [f"{symbol.lower()}@aggTrade" for symbol in subscription.trades]
        if subscription.all_liquidations:
            names.append(ALL_LIQUIDATIONS_STREAM)
        names.extend(f"{symbol.lower()}@forceOrder" for symbol in subscription.liquidations)
        return names

    def connect_url(self, subscription: Subscription) -> str:
        return f"{self.rules.url}/stream?streams={'/'.join(self.streams(subscription))}"

    def subscribe_frames(self, subscription: Subscription) -> list[str]:
        return []   # the combined-stream URL selects the streams

    def events(self, message: Any, ts_recv: int, out: Parsed) -> None:
        if message.__class__ is not dict:
            raise FrameError(UNKNOWN_EVENT, f"expected a JSON object, got {type(message).__name__}")
        data = obj(message.get("data"), "data") if "stream" in message else message
        kind = data.get("e")
        if kind == "aggTrade":
            maker = data.get("m")
            side = TAKER.get(maker) if maker.__class__ is bool else None
            if side is None:
                raise FrameError(BAD_FIELD, "m (buyer is maker) missing or not a boolean")
            out.events.append(self.trade(data.get("s"), side, data.get("p"), data.get("q"),
                                         sequence_id(data, "a"), epoch_ms(data.get("T"), "T"), ts_recv))
            return
        if kind == "forceOrder":
            order = obj(data.get("o"), "o (order)")
            raw_side = order.get("S")
            liquidated = LIQUIDATED.get(raw_side) if raw_side.__class__ is str else None
            if liquidated is None:
                raise FrameError(BAD_FIELD, f"S must be SELL or BUY, got {str(order.get('S'))[:20]!r}")
            ts = epoch_ms(order.get("T"), "T")
            symbol, filled = order.get("s"), order.get("z")
            out.events.append(self.liquidation(symbol, liquidated, _filled_average(order), filled,
                                               f"{symbol}:{ts}:{raw_side}:{filled}", ts, ts_recv))
            return
        if kind is None and "result" in data and "id" in data:
            return   # reply to SUBSCRIBE / LIST_SUBSCRIPTIONS
        raise FrameError(UNKNOWN_EVENT, f"unknown event type {str(kind)[:40]!r}")
