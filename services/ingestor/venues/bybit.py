"""Bybit v5 public linear: ``publicTrade.{symbol}`` and ``allLiquidation.{symbol}``.

- Subscribe ``{"op":"subscribe","args":[topic, ...]}`` with at most 10 args per request (Bybit has
  no all-market liquidation topic: ``allLiquidation`` is subscribed per symbol, by default for
  every listed instrument of the table); the reply
  ``{"success":true,"ret_msg":"","conn_id":...,"op":"subscribe"}`` is ignored, a reply with
  ``"success":false`` is dead-lettered (``unknown_event``) so a rejected topic is visible.
- Heartbeat: the client sends ``{"op":"ping"}`` every 20 s; the reply is
  ``{"success":true,"ret_msg":"pong",...,"op":"ping"}`` (or ``{"op":"pong",...}``): ignored.
- ``publicTrade``: ``data`` is an array of ``{T, s, S, v, p, L, i, BT}``; ``S`` is the **taker**
  side (``Buy``/``Sell``), ``v`` the size in base units, ``i`` a trade id (UUID, not sequential).
- ``allLiquidation``: ``data`` entries ``{T, s, S, v, p}``; ``S`` is the **position** side —
  Bybit: "When you receive a ``Buy`` update, this means that a long position has been liquidated"
  — so ``Buy`` → ``long``, ``Sell`` → ``short``. ``p`` is the bankruptcy price. There is no id:
  the liquidation id is ``symbol:T:S:v:p``, plus ``:n`` for the n-th repeat of an identical row
  within one push (two identical rows are two liquidations).
"""

from __future__ import annotations

from typing import Any

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
    Adapter,
    choice,
    epoch_ms,
    liquidation_symbols,
    make_instrument,
    number_repeats,
    obj,
    one_row,
    op_subscribe,
    text,
)

TAKER = {"Buy": "buy", "Sell": "sell"}
POSITION = {"Buy": "long", "Sell": "short"}
ARGS_PER_REQUEST = 10


class Bybit(Adapter):
    id = "bybit"
    sequential_trade_ids = False
    channel_markers = (('"topic":"publicTrade.', "trades"), ('"topic":"allLiquidation.', "liquidations"))
    rules = ConnectionRules(
        url="wss://stream.bybit.com/v5/public/linear",
        heartbeat=Heartbeat(payload='{"op":"ping"}', interval=20.0,
                            pong_prefixes=('{"success":true,"ret_msg":"pong"', '{"op":"pong"')),
        max_streams_per_connection=200,    # args of one connection are limited to 21,000 characters
        max_messages_per_second=5.0,
        stale_after_seconds={"trades": 60.0, "liquidations": 3600.0},
    )

    rest_instrument_urls = ("https://api.bybit.com/v5/market/instruments-info?category=linear&limit=1000",)

    @staticmethod
    def parse_rest_instruments(body: Any) -> list[Instrument]:
        """``GET /v5/market/instruments-info?category=linear``: linear perpetuals and futures trading."""
        out: list[Instrument] = []
        for item in body.get("result", {}).get("list", []) if isinstance(body, dict) else []:
            contract = item.get("contractType")
            if item.get("status") != "Trading" or contract not in ("LinearPerpetual", "LinearFutures"):
                continue
            market = "perp" if contract == "LinearPerpetual" else "future"
            expiry = int(item.get("deliveryTime") or 0) if market == "future" else None
            out.append(make_instrument("bybit", item["symbol"], item["baseCoin"], item["quoteCoin"], market, "linear",
                                       expiry_ms=expiry))
        return out

    def subscribe_frames(self, subscription: Subscription) -> list[str]:
        topics = [f"publicTrade.{symbol}" for symbol in subscription.trades]
        # Bybit has no all-market liquidation topic: one per symbol
        topics += [f"allLiquidation.{symbol}" for symbol in liquidation_symbols(subscription, self.instruments)]
        return op_subscribe(topics, ARGS_PER_REQUEST)

    def events(self, message: Any, ts_recv: int, out: Parsed) -> None:
        msg = obj(message, "frame")
        topic = msg.get("topic")
        if topic.__class__ is not str:
            if "op" in msg or "success" in msg:
                if msg.get("success") is False:
                    raise FrameError(UNKNOWN_EVENT, f"request rejected: {str(msg.get('ret_msg'))[:80]}")
                return        # subscribe ack or pong
            raise FrameError(UNKNOWN_EVENT, "frame without topic")
        if topic.startswith("publicTrade."):
            self.rows(out, msg.get("data"), "data", self._trade, ts_recv, one_row(msg, "data"))
        elif topic.startswith("allLiquidation."):
            start = len(out.events)
            self.rows(out, msg.get("data"), "data", self._liquidation, ts_recv, one_row(msg, "data"))
            number_repeats(out.events, start)
        else:
            raise FrameError(UNKNOWN_EVENT, f"unknown topic {topic[:40]!r}")

    def _trade(self, d: dict[str, Any], ts_recv: int, out: Parsed) -> None:
        side = d.get("S")
        out.events.append(self.trade(d.get("s"), TAKER.get(side) or choice(side, TAKER, "S"),  # type: ignore[arg-type]
                                     d.get("p"), d.get("v"), text(d, "i"), epoch_ms(d.get("T"), "T"), ts_recv))

    def _liquidation(self, d: Any, ts_recv: int, out: Parsed) -> None:
        d = obj(d, "data[]")
        side = choice(d.get("S"), POSITION, "S")
        ts = epoch_ms(d.get("T"), "T")
        symbol, size, price = d.get("s"), d.get("v"), d.get("p")
        out.events.append(self.liquidation(symbol, side, price, size,  # type: ignore[arg-type]
                                           f"{symbol}:{ts}:{d['S']}:{size}:{price}", ts, ts_recv))
