"""Kraken Futures websocket v1: the public ``trade`` feed, whose ``type`` marks liquidations.

- ``wss://futures.kraken.com/ws/v1``; on connect the server sends ``{"event":"info","version":1}``.
  Subscribe ``{"event":"subscribe","feed":"trade","product_ids":[...]}``; the reply
  ``{"event":"subscribed","feed":"trade","product_ids":[...]}`` is ignored, ``subscribed_failed``
  and ``{"event":"error","message":...}`` are dead-lettered (``unknown_event``).
- Heartbeat: the client subscribes the ``heartbeat`` feed (``{"feed":"heartbeat","time":...}``,
  ignored) so a quiet connection still carries messages, and sends websocket pings.
- ``trade`` (delta) ``{feed:"trade", product_id, uid, side, type, seq, time, qty, price}`` and
  ``trade_snapshot`` ``{feed, product_id, trades:[...]}`` (recent trades sent on subscribe; the
  dedupe absorbs those already published): ``side`` is the **taker** side, ``uid`` the trade id
  (a UUID: no gap detection; ``seq`` numbers subscription messages, not trades), ``time`` epoch
  ms, ``qty`` in base units for the multi-collateral ``PF_`` perpetuals (contract size 1).
- ``type``: ``fill`` (normal), ``block`` (part of a block trade), ``termination`` (a user's account
  being terminated) are trades; ``liquidation`` is "a result of a user being liquidated from their
  position": the trade plus a liquidation whose closed position is the taker's — the liquidation
  engine's order is the aggressor (taker ``sell`` closes a ``long``, ``buy`` a ``short``),
  id ``kraken-futures:uid``.
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
from services.ingestor.venues.common import Adapter, choice, epoch_ms, make_instrument, obj, one_row, text

TAKER = {"buy": "buy", "sell": "sell"}
CLOSED_BY_TAKER = {"buy": "short", "sell": "long"}
TRADE_TYPES = {"fill": "fill", "block": "block", "termination": "termination", "liquidation": "liquidation"}
_IGNORED_EVENTS = frozenset(("info", "subscribed", "unsubscribed"))
_BASES = {"XBT": "BTC"}


class KrakenFutures(Adapter):
    id = "kraken-futures"
    sequential_trade_ids = False
    channel_markers = (('"feed":"trade', None),)     # trades carry the liquidations too
    rules = ConnectionRules(
        url="wss://futures.kraken.com/ws/v1",
        heartbeat=Heartbeat(payload=None, interval=30.0),
        max_streams_per_connection=200,
        max_messages_per_second=5.0,
        stale_after_seconds={"trades": 120.0, "liquidations": 6 * 3600.0},
    )
    rest_instrument_urls = ("https://futures.kraken.com/derivatives/api/v3/instruments",)

    @staticmethod
    def parse_rest_instruments(body: Any) -> list[Instrument]:
        """``GET /derivatives/api/v3/instruments``: ``{"result":"success","instruments":[{symbol,
        type, tradeable, contractSize, base, quote}]}``; the tradeable ``PF_`` perpetuals
        (``flexible_futures``, ``qty`` = ``contractSize`` base units)."""
        out: list[Instrument] = []
        for item in body.get("instruments", []) if isinstance(body, dict) else []:
            symbol = str(item.get("symbol", ""))
            if not symbol.startswith("PF_") or not item.get("tradeable") or item.get("type") != "flexible_futures":
                continue
            base = _BASES.get(str(item.get("base", "")), str(item.get("base", "")))
            quote = str(item.get("quote", "USD"))
            size = float(item.get("contractSize", 1))
            if base and size > 0:
                out.append(make_instrument("kraken-futures", symbol, base, quote, "perp", "linear", size))
        return out

    def subscribe_frames(self, subscription: Subscription) -> list[str]:
        symbols = list(dict.fromkeys((*subscription.trades, *subscription.liquidations)))
        if not symbols:
            return []
        return [orjson.dumps({"event": "subscribe", "feed": "trade", "product_ids": symbols}).decode(),
                '{"event":"subscribe","feed":"heartbeat"}']

    def events(self, message: Any, ts_recv: int, out: Parsed) -> None:
        msg = obj(message, "frame")
        if "event" in msg:     # info, subscription replies (they name the feed too) and errors
            if msg["event"] in _IGNORED_EVENTS:
                return
            raise FrameError(UNKNOWN_EVENT, f"event {str(msg['event'])[:30]!r}: {str(msg.get('message'))[:80]}")
        feed = msg.get("feed")
        if feed == "trade":
            self._trade(msg, ts_recv, out)
        elif feed == "trade_snapshot":
            self.rows(out, msg.get("trades"), "trades", self._trade, ts_recv, one_row(msg, "trades"))
        elif feed != "heartbeat":
            raise FrameError(UNKNOWN_EVENT, f"unknown feed {str(feed)[:40]!r}")

    def _trade(self, d: Any, ts_recv: int, out: Parsed) -> None:
        d = obj(d, "trade")
        symbol, price, size = d.get("product_id"), d.get("price"), d.get("qty")
        side = d.get("side")
        taker: str = TAKER.get(side) or choice(side, TAKER, "side")  # type: ignore[arg-type]
        kind = choice(d.get("type"), TRADE_TYPES, "type")
        uid, ts = text(d, "uid"), epoch_ms(d.get("time"), "time")
        out.events.append(self.trade(symbol, taker, price, size, uid, ts, ts_recv))  # type: ignore[arg-type]
        if kind == "liquidation":
            out.events.append(self.liquidation(symbol, CLOSED_BY_TAKER[taker], price, size, uid,  # type: ignore[arg-type]
                                               ts, ts_recv))
