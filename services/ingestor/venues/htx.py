"""HTX (Huobi) USDT-margined swaps: ``market.$contract_code.trade.detail`` and the public
``public.$contract_code.liquidation_orders``.

- Two endpoints: market data ``wss://api.hbdm.com/linear-swap-ws`` (trades) and the order-push
  endpoint ``wss://api.hbdm.com/linear-swap-notification`` (liquidation orders, no authentication
  needed for this topic). ``liquidations_apart``: the runtime plans the liquidation stream on a
  connection of its own, and :meth:`connect_url` picks the endpoint from the subscription.
- Every frame HTX sends is a **gzip-compressed binary** message: :meth:`frame_text` inflates it
  (bounded to 1 MiB) before the frame is recorded or parsed, so recordings and dead letters hold
  the JSON text.
- Heartbeat: HTX pings the client and closes a connection that misses pongs — market endpoint
  ``{"ping":<ms>}`` → ``{"pong":<ms>}``, notification endpoint ``{"op":"ping","ts":"<ms>"}`` →
  ``{"op":"pong","ts":"<ms>"}``. :meth:`heartbeat_reply` builds the answer the runtime sends.
- Trades: subscribe ``{"sub":"market.BTC-USDT.trade.detail","id":"BTC-USDT"}``, ack
  ``{"id","status":"ok","subbed","ts"}``, error ``{"status":"error","err-code","err-msg"}``
  (dead-lettered). Data ``{"ch","ts","tick":{"id","ts","data":[{id, ts, price, amount, quantity,
  trade_turnover, direction}]}}``: ``direction`` is the **taker** side, ``amount`` contracts of
  ``contract_size`` base units (``quantity`` is the same in coins), ``id`` a trade id (unique, not
  consecutive: no gap detection). The contract code is the ``ch``'s second part.
- Liquidations: subscribe ``{"op":"sub","cid","topic":"public.*.liquidation_orders"}`` (every
  swap contract) or per contract; ack ``{"op":"sub","cid","topic","ts","err-code":0}`` (a
  non-zero ``err-code`` is dead-lettered). Data ``{"op":"notify","topic","ts","data":[{symbol,
  contract_code, direction, offset, volume, amount, trade_turnover, price, created_at, ...}]}``:
  ``direction`` is the side of the liquidation **order** (``sell`` closes a long), ``volume``
  contracts, ``price`` the bankruptcy price. No id: ``contract_code:created_at:direction:volume:
  price``, ``:n`` for the n-th identical row of one push.
"""

from __future__ import annotations

import zlib
from typing import Any

import orjson

from services.common.codec import raw_text
from services.ingestor.venues.base import (
    UNKNOWN_EVENT,
    ConnectionRules,
    FrameError,
    Heartbeat,
    Instrument,
    Parsed,
    Subscription,
)
from services.ingestor.venues.common import (
    MAX_FRAME_CHARS,
    Adapter,
    choice,
    epoch_ms,
    ident,
    make_instrument,
    number_repeats,
    obj,
    text,
)

MARKET_PATH = "/linear-swap-ws"
NOTIFICATION_PATH = "/linear-swap-notification"
TAKER = {"buy": "buy", "sell": "sell"}
CLOSED_BY_ORDER = {"sell": "long", "buy": "short"}
ALL_CONTRACTS = "*"
_GZIP = 16 + zlib.MAX_WBITS


def _envelope(message: dict[str, Any], key: str, row: Any) -> dict[str, Any]:
    return {**message, key: [row]}


class Htx(Adapter):
    id = "htx"
    sequential_trade_ids = False
    liquidations_apart = True
    channel_markers = (('"ch":"market.', "trades"), ('"op":"notify"', "liquidations"))
    rules = ConnectionRules(
        url="wss://api.hbdm.com",
        heartbeat=Heartbeat(payload=None, interval=5.0),    # HTX pings; heartbeat_reply answers
        max_streams_per_connection=100,
        max_messages_per_second=5.0,
        stale_after_seconds={"trades": 60.0, "liquidations": 3600.0},
    )
    rest_instrument_urls = ("https://api.hbdm.com/linear-swap-api/v1/swap_contract_info",)

    @staticmethod
    def parse_rest_instruments(body: Any) -> list[Instrument]:
        """``GET /linear-swap-api/v1/swap_contract_info``: ``{"status":"ok","data":[{symbol,
        contract_code, contract_size, contract_status, business_type, pair}]}``; listed
        (``contract_status`` 1) swaps; ``contract_size`` is base units per contract."""
        out: list[Instrument] = []
        for item in body.get("data", []) if isinstance(body, dict) else []:
            if item.get("contract_status") != 1 or item.get("business_type", "swap") != "swap":
                continue
            code = str(item.get("contract_code", ""))
            base, _, quote = code.partition("-")
            size = float(item["contract_size"])
            if base and quote and size > 0:
                out.append(make_instrument("htx", code, base, quote, "perp", "linear", size))
        return out

    @staticmethod
    def frame_text(message: bytes) -> str:
        """The JSON text of one gzip-compressed HTX message (inflated to at most 1 MiB + 1)."""
        inflater = zlib.decompressobj(_GZIP)
        try:
            data = inflater.decompress(message, MAX_FRAME_CHARS + 1)
        except zlib.error:
            return raw_text(message)          # not gzip: dead-lettered as it came
        if inflater.unconsumed_tail or not inflater.eof:
            return raw_text(message)          # oversized or truncated: dead-lettered as it came
        return raw_text(data)

    @staticmethod
    def heartbeat_reply(frame: str) -> str | None:
        """The pong for an HTX ping (``{"ping":n}`` or ``{"op":"ping","ts":"n"}``), else None."""
        if frame.startswith('{"ping"'):
            try:
                return orjson.dumps({"pong": orjson.loads(frame)["ping"]}).decode()
            except (orjson.JSONDecodeError, KeyError, TypeError):
                return None
        if frame.startswith('{"op":"ping"'):
            try:
                return orjson.dumps({"op": "pong", "ts": orjson.loads(frame)["ts"]}).decode()
            except (orjson.JSONDecodeError, KeyError, TypeError):
                return None
        return None

    def connect_url(self, subscription: Subscription) -> str:
        return f"{self.rules.url}{MARKET_PATH if subscription.trades else NOTIFICATION_PATH}"

    def subscribe_frames(self, subscription: Subscription) -> list[str]:
        """Trades on the market endpoint when the subscription has any (the runtime plans the
        liquidations apart), else the liquidation topics on the notification endpoint."""
        if subscription.trades:
            return [orjson.dumps({"sub": f"market.{code}.trade.detail", "id": code}).decode()
                    for code in subscription.trades]
        codes = list(subscription.liquidations) or ([ALL_CONTRACTS] if subscription.all_liquidations else [])
        return [orjson.dumps({"op": "sub", "cid": f"liq-{code}", "topic": f"public.{code}.liquidation_orders"}).decode()
                for code in codes]

    def events(self, message: Any, ts_recv: int, out: Parsed) -> None:
        msg = obj(message, "frame")
        channel = msg.get("ch")
        if channel is not None:
            parts = channel.split(".") if channel.__class__ is str else ()
            if len(parts) != 4 or parts[0] != "market" or parts[2:] != ["trade", "detail"]:
                raise FrameError(UNKNOWN_EVENT, f"unknown channel {str(channel)[:40]!r}")
            tick = obj(msg.get("tick"), "tick")
            code = parts[1]
            self.rows(out, tick.get("data"), "data", lambda row, ts, into: self._trade(code, row, ts, into), ts_recv,
                      lambda row: {**msg, "tick": _envelope(tick, "data", row)})
            return
        op = msg.get("op")
        if op == "notify":
            topic = msg.get("topic")
            if topic.__class__ is not str or not topic.endswith(".liquidation_orders"):
                raise FrameError(UNKNOWN_EVENT, f"unknown topic {str(topic)[:40]!r}")
            start = len(out.events)
            self.rows(out, msg.get("data"), "data", self._liquidation, ts_recv, lambda row: _envelope(msg, "data", row))
            number_repeats(out.events, start)
            return
        if op in ("sub", "unsub") and msg.get("err-code") in (0, "0", None):
            return
        if op == "ping" or "ping" in msg or msg.get("status") == "ok":
            return
        raise FrameError(UNKNOWN_EVENT, f"error or unknown message: {str(msg.get('err-msg') or op)[:80]}")

    def _trade(self, code: str, d: Any, ts_recv: int, out: Parsed) -> None:
        d = obj(d, "data[]")
        side = d.get("direction")
        out.events.append(self.trade(code, TAKER.get(side) or choice(side, TAKER, "direction"),  # type: ignore[arg-type]
                                     d.get("price"), d.get("amount"), ident(d, "id"), epoch_ms(d.get("ts"), "ts"),
                                     ts_recv))

    def _liquidation(self, d: Any, ts_recv: int, out: Parsed) -> None:
        d = obj(d, "data[]")
        code, direction = text(d, "contract_code"), choice(d.get("direction"), CLOSED_BY_ORDER, "direction")
        ts, volume, price = epoch_ms(d.get("created_at"), "created_at"), d.get("volume"), d.get("price")
        out.events.append(self.liquidation(code, direction, price, volume,  # type: ignore[arg-type]
                                           f"{code}:{ts}:{d['direction']}:{volume}:{price}", ts, ts_recv))
