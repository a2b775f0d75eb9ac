"""Deribit JSON-RPC v2: ``trades.{instrument}.100ms``, whose trades carry a ``liquidation`` flag.

- Subscribe ``{"jsonrpc":"2.0","id":N,"method":"public/subscribe","params":{"channels":[...]}}``;
  the reply ``{"jsonrpc":"2.0","id":N,"result":[channels]}`` is ignored, ``{"error":...}``
  dead-lettered. The ``raw`` interval needs an authorised connection, so the public adapter uses
  ``100ms`` (the same trades, batched).
- Heartbeat: the client calls ``public/test`` every 20 s (reply ``{"id":9001,"result":...}``);
  server ``heartbeat`` notifications are ignored.
- Notification ``{"method":"subscription","params":{"channel","data":[trade, ...]}}`` with trades
  ``{trade_id, trade_seq, timestamp, instrument_name, direction, price, amount, liquidation?}``.
  ``direction`` is the **taker** side. ``amount`` is USD for inverse perpetuals/futures
  (``BTC-PERPETUAL``) and base coin for linear ones (``BTC_USDC-PERPETUAL``).
- ``liquidation``: ``"T"`` the taker was under liquidation, ``"M"`` the maker, ``"MT"`` both.
  A liquidated taker who sold was closing a long (sell → ``long``, buy → ``short``); a liquidated
  maker was on the other side (taker buy → maker sold → ``long``). Each flagged trade yields the
  trade plus one liquidation per liquidated side, id ``trade_id:T`` / ``trade_id:M``.
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
from services.ingestor.venues.common import Adapter, choice, epoch_ms, ident, normalized_name, obj

TAKER = {"buy": "buy", "sell": "sell"}
TAKER_CLOSED = {"buy": "short", "sell": "long"}    # a liquidated taker's order closes its position
MAKER_CLOSED = {"buy": "long", "sell": "short"}    # the maker took the opposite side
LIQUIDATED_ROLES = {"T": "T", "M": "M", "MT": "MT"}
HEARTBEAT_ID = 9001
INTERVAL = "100ms"


class Deribit(Adapter):
    id = "deribit"
    sequential_trade_ids = False     # trade_seq is sequential per instrument; trade_id is not
    channel_markers = (('"channel":"trades.', None),)     # trades carry the liquidations too
    rules = ConnectionRules(
        url="wss://www.deribit.com/ws/api/v2",
        heartbeat=Heartbeat(
            payload=f'{{"jsonrpc":"2.0","id":{HEARTBEAT_ID},"method":"public/test","params":{{}}}}',
            interval=20.0, pong_prefixes=(f'{{"jsonrpc":"2.0","id":{HEARTBEAT_ID},',)),
        max_streams_per_connection=200,
        max_messages_per_second=5.0,
        stale_after_seconds={"trades": 120.0, "liquidations": 6 * 3600.0},
    )

    rest_instrument_urls = ("https://www.deribit.com/api/v2/public/get_instruments?currency=any&kind=future",)

    @staticmethod
    def parse_rest_instruments(body: Any) -> list[Instrument]:
        """``public/get_instruments``: ``{"result": [{instrument_name, settlement_period, base_currency,
        counter_currency, instrument_type, expiration_timestamp, is_active}]}``. ``amount`` is USD
        for ``reversed`` (inverse) instruments and base coin for ``linear`` ones: 1 unit either way."""
        out = []
        for item in body.get("result", []) if isinstance(body, dict) else []:
            if not item.get("is_active", True):
                continue
            perpetual = item.get("settlement_period") == "perpetual"
            base, quote = str(item["base_currency"]), str(item["counter_currency"])
            market = "perp" if perpetual else "future"
            expiry = None if perpetual else int(item["expiration_timestamp"])
            kind = "inverse" if item.get("instrument_type") == "reversed" else "linear"
            out.append(Instrument("deribit", str(item["instrument_name"]), normalized_name(base, quote, market, expiry),
                                  base, quote, market, kind, 1.0))  # type: ignore[arg-type]
        return out

    def subscribe_frames(self, subscription: Subscription) -> list[str]:
        symbols = dict.fromkeys((*subscription.trades, *subscription.liquidations))
        channels = [f"trades.{symbol}.{INTERVAL}" for symbol in symbols]
        if not channels:
            return []
        return [orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "public/subscribe",
                              "params": {"channels": channels}}).decode()]

    def events(self, message: Any, ts_recv: int, out: Parsed) -> None:
        msg = obj(message, "frame")
        method = msg.get("method")
        if method == "subscription":
            params = obj(msg.get("params"), "params")
            channel = params.get("channel")
            if channel.__class__ is not str or not channel.startswith("trades."):
                raise FrameError(UNKNOWN_EVENT, f"unknown channel {str(channel)[:40]!r}")
            self.rows(out, params.get("data"), "data", self._trade, ts_recv,
                      lambda row: {**msg, "params": {**params, "data": [row]}})
            return
        if method == "heartbeat":
            return
        if "error" in msg:
            raise FrameError(UNKNOWN_EVENT, f"error reply: {str(msg['error'])[:80]}")
        if "result" in msg and "id" in msg:
            return
        raise FrameError(UNKNOWN_EVENT, f"unknown method {str(method)[:40]!r}")

    def _trade(self, d: dict[str, Any], ts_recv: int, parsed: Parsed) -> None:
        out = parsed.events
        symbol, price, amount = d.get("instrument_name"), d.get("price"), d.get("amount")
        direction = d.get("direction")
        side: str = TAKER.get(direction) or choice(direction, TAKER, "direction")  # type: ignore[arg-type]
        trade_id = ident(d, "trade_id")
        ts = epoch_ms(d.get("timestamp"), "timestamp")
        out.append(self.trade(symbol, side, price, amount, trade_id, ts, ts_recv))  # type: ignore[arg-type]
        flag = d.get("liquidation")
        if flag is None:
            return
        roles = choice(flag, LIQUIDATED_ROLES, "liquidation")
        if "M" in roles:
            out.append(self.liquidation(symbol, MAKER_CLOSED[side], price, amount,  # type: ignore[arg-type]
                                        f"{trade_id}:M", ts, ts_recv))
        if "T" in roles:
            out.append(self.liquidation(symbol, TAKER_CLOSED[side], price, amount,  # type: ignore[arg-type]
                                        f"{trade_id}:T", ts, ts_recv))
