"""Hyperliquid perpetuals: the public ``trades`` subscription (trades only; no liquidations).

- ``wss://api.hyperliquid.xyz/ws``; subscribe ``{"method":"subscribe","subscription":{"type":
  "trades","coin":"BTC"}}`` per coin; the reply ``{"channel":"subscriptionResponse","data":{...}}``
  is ignored, ``{"channel":"error","data":"..."}`` is dead-lettered (``unknown_event``).
- Heartbeat: the server closes a connection without a message for 60 s; the client sends
  ``{"method":"ping"}`` every 30 s, the reply is ``{"channel":"pong"}``.
- ``{"channel":"trades","data":[{coin, side, px, sz, time, hash, tid, users}]}``: ``side`` is the
  **taker** side (``B`` bid = buy, ``A`` ask = sell), ``sz`` in coins (base units), ``time`` epoch
  ms, ``tid`` a trade id (unique, not sequential per coin: no gap detection), ``users`` the buyer
  and seller addresses. Coins prefixed ``k`` (``kPEPE``) are quoted per 1,000 units: price scale
  and contract size 1000. Perpetuals settle in USDC (quote ``USDC``).
- Liquidations: the public feed does **not** say whether a trade was a liquidation — a
  ``WsTrade`` has no liquidation flag, and liquidation details (``liquidation`` with
  ``liquidatedUser``, ``markPx``, ``method``) appear only in the per-user ``userFills`` /
  ``userEvents`` streams of the liquidated address. No public market-wide liquidation stream
  exists, so this adapter emits trades only and Hyperliquid contributes no liquidations.
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
from services.ingestor.venues.common import Adapter, choice, epoch_ms, ident, make_instrument, obj, one_row

TAKER = {"B": "buy", "A": "sell"}
_IGNORED_CHANNELS = frozenset(("subscriptionResponse", "pong"))


def venue_base(coin: str) -> str:
    """``kPEPE`` (1,000 PEPE) in the ``1000PEPE`` form the instrument helpers understand."""
    return f"1000{coin[1:]}" if coin[:1] == "k" and coin[1:].isupper() else coin


class Hyperliquid(Adapter):
    id = "hyperliquid"
    sequential_trade_ids = False
    channel_markers = (('"channel":"trades"', "trades"),)
    rules = ConnectionRules(
        url="wss://api.hyperliquid.xyz/ws",
        heartbeat=Heartbeat(payload='{"method":"ping"}', interval=30.0, pong_prefixes=('{"channel":"pong"',)),
        max_streams_per_connection=100,        # Hyperliquid: at most 1000 subscriptions per IP
        max_messages_per_second=5.0,
        stale_after_seconds={"trades": 120.0, "liquidations": 3600.0},
    )
    rest_instrument_urls = ("https://api.hyperliquid.xyz/info",)
    rest_instrument_body = b'{"type":"meta"}'     # the info endpoint is POST

    @staticmethod
    def parse_rest_instruments(body: Any) -> list[Instrument]:
        """``POST /info {"type":"meta"}``: ``{"universe":[{name, szDecimals, maxLeverage,
        isDelisted?}]}``; every perpetual not delisted."""
        out: list[Instrument] = []
        for item in body.get("universe", []) if isinstance(body, dict) else []:
            name = item.get("name")
            if not isinstance(name, str) or not name or item.get("isDelisted"):
                continue
            out.append(make_instrument("hyperliquid", name, venue_base(name), "USDC", "perp", "linear"))
        return out

    def subscribe_frames(self, subscription: Subscription) -> list[str]:
        return [orjson.dumps({"method": "subscribe", "subscription": {"type": "trades", "coin": coin}}).decode()
                for coin in subscription.trades]

    def events(self, message: Any, ts_recv: int, out: Parsed) -> None:
        msg = obj(message, "frame")
        channel = msg.get("channel")
        if channel == "trades":
            self.rows(out, msg.get("data"), "data", self._trade, ts_recv, one_row(msg, "data"))
        elif channel in _IGNORED_CHANNELS:
            return
        elif channel == "error":
            raise FrameError(UNKNOWN_EVENT, f"error: {str(msg.get('data'))[:80]}")
        else:
            raise FrameError(UNKNOWN_EVENT, f"unknown channel {str(channel)[:40]!r}")

    def _trade(self, d: Any, ts_recv: int, out: Parsed) -> None:
        d = obj(d, "data[]")
        side = d.get("side")
        out.events.append(self.trade(d.get("coin"), TAKER.get(side) or choice(side, TAKER, "side"),  # type: ignore[arg-type]
                                     d.get("px"), d.get("sz"), ident(d, "tid"), epoch_ms(d.get("time"), "time"),
                                     ts_recv))
