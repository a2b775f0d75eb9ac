"""Coinbase Exchange spot: the ``matches`` channel of the websocket feed.

- Subscribe ``{"type":"subscribe","product_ids":[...],"channels":["matches"]}``; the reply
  ``{"type":"subscriptions","channels":[...]}`` and ``heartbeat`` messages are ignored, ``{"type":
  "error","message","reason"}`` is dead-lettered.
- No app-level ping: Coinbase answers websocket pings (the websockets client sends them).
- ``match`` / ``last_match`` (the latest trade, sent once on subscribe; dedupe absorbs a repeat):
  ``{trade_id, sequence, maker_order_id, taker_order_id, time, product_id, size, price, side}``.
  Coinbase: "The side field indicates the **maker** order side. If the side is sell this
  indicates the maker was a sell order and the match is considered an up-tick." The taker side is
  therefore the opposite: ``side=sell`` → taker ``buy``, ``side=buy`` → taker ``sell``.
  ``size`` is in base units; ``trade_id`` is sequential per product.
"""

from __future__ import annotations

from typing import Any

import orjson

from services.ingestor.venues.base import (
    UNKNOWN_EVENT,
    ConnectionRules,
    FrameError,
    Heartbeat,
    Instrument,
    Parsed,
    Subscription,
)
from services.ingestor.venues.common import Adapter, choice, iso_ms, normalized_name, obj, sequence_id

TAKER_FROM_MAKER = {"sell": "buy", "buy": "sell"}
_MATCHES = frozenset(("match", "last_match"))
_CONTROL = frozenset(("subscriptions", "heartbeat"))


class Coinbase(Adapter):
    id = "coinbase"
    sequential_trade_ids = True
    channel_markers = (('"type":"match"', "trades"), ('"type":"last_match"', "trades"))
    rules = ConnectionRules(
        url="wss://ws-feed.exchange.coinbase.com",
        heartbeat=Heartbeat(payload=None, interval=30.0),
        max_streams_per_connection=100,
        max_messages_per_second=8.0,     # Coinbase: 8 requests per second per IP (burst 20)
        stale_after_seconds={"trades": 120.0, "liquidations": 3600.0},
    )

    rest_instrument_urls = ("https://api.exchange.coinbase.com/products",)

    @staticmethod
    def parse_rest_instruments(body: Any) -> list[Instrument]:
        """``GET /products``: ``[{id, base_currency, quote_currency, status, trading_disabled}]``."""
        out = []
        for item in body if isinstance(body, list) else []:
            if item.get("status") != "online" or item.get("trading_disabled"):
                continue
            base, quote = str(item["base_currency"]), str(item["quote_currency"])
            out.append(Instrument("coinbase", str(item["id"]), normalized_name(base, quote, "spot"), base, quote,
                                  "spot", "spot", 1.0))
        return out

    def subscribe_frames(self, subscription: Subscription) -> list[str]:
        if not subscription.trades:
            return []
        return [orjson.dumps({"type": "subscribe", "product_ids": list(subscription.trades),
                              "channels": ["matches"]}).decode()]

    def events(self, message: Any, ts_recv: int, out: Parsed) -> None:
        msg = obj(message, "frame")
        kind = msg.get("type")
        if kind in _MATCHES:
            maker = msg.get("side")
            out.events.append(self.trade(msg.get("product_id"),
                               TAKER_FROM_MAKER.get(maker) or choice(maker, TAKER_FROM_MAKER, "side"),  # type: ignore[arg-type]
                               msg.get("price"), msg.get("size"), sequence_id(msg, "trade_id"),
                               iso_ms(msg.get("time"), "time"), ts_recv))
            return
        if kind in _CONTROL:
            return
        if kind == "error":
            raise FrameError(UNKNOWN_EVENT, f"error: {str(msg.get('message'))[:60]} {str(msg.get('reason'))[:60]}")
        raise FrameError(UNKNOWN_EVENT, f"unknown type {str(kind)[:40]!r}")
