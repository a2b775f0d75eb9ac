"""OKX v5 public: ``trades`` per instrument and ``liquidation-orders`` streamed per instType.

- Subscribe ``{"op":"subscribe","args":[{"channel":"trades","instId":"BTC-USDT-SWAP"}, ...]}`` and
  ``{"channel":"liquidation-orders","instType":"SWAP"}`` / ``"FUTURES"`` (all instruments of the
  type; OKX has no per-instrument liquidation channel). Replies ``{"event":"subscribe",...}`` are
  ignored; ``{"event":"error","code","msg"}`` is dead-lettered (``unknown_event``).
- Heartbeat: text ``ping`` at least every 30 s (OKX closes a connection silent for 30 s); the
  reply is the text ``pong``.
- ``trades`` data ``{instId, tradeId, px, sz, side, ts, count}``: ``side`` is the taker side,
  ``sz`` is in contracts (SWAP/FUTURES: × ``ctVal`` = base units; inverse ``BTC-USD-SWAP``: USD
  per contract), ``tradeId`` is sequential per instrument (gap detection applies).
- ``liquidation-orders`` data ``{instId, instType, details: [{side, posSide, bkPx, sz, ts, ...}]}``:
  ``side`` is the side of the liquidation **order** (``sell`` closes a long, ``buy`` a short);
  ``posSide`` is ``long``/``short`` in long/short (hedge) mode, ``net`` in net mode. The closed
  position is ``posSide`` when it is ``long``/``short`` (it must agree with ``side``), else derived
  from ``side``. Price is ``bkPx`` (bankruptcy price), size ``sz`` contracts.
"""

from __future__ import annotations

from typing import Any

from services.ingestor.venues.base import (
    BAD_VALUE,
    UNKNOWN_EVENT,
    ConnectionRules,
    Event,
    FrameError,
    Heartbeat,
    Subscription,
)
from services.ingestor.venues.common import (
    Adapter,
    choice,
    epoch_ms,
    items,
    obj,
    op_subscribe,
    sequence_id,
)

TAKER = {"buy": "buy", "sell": "sell"}
CLOSED_BY_ORDER = {"sell": "long", "buy": "short"}      # the liquidation order closes the opposite
HEDGE_POSITION = {"long": "long", "short": "short"}
LIQUIDATION_INST_TYPES = ("SWAP", "FUTURES")
ARGS_PER_REQUEST = 50
_IGNORED_EVENTS = frozenset(("subscribe", "unsubscribe", "notice", "channel-conn-count"))


class Okx(Adapter):
    id = "okx"
    sequential_trade_ids = True
    control_frames = frozenset(("pong",))
    channel_markers = (('"channel":"liquidation-orders"', "liquidations"), ('"channel":"trades"', "trades"))
    rules = ConnectionRules(
        url="wss://ws.okx.com:8443/ws/v5/public",
        heartbeat=Heartbeat(payload="ping", interval=25.0, pong_prefixes=("pong",)),
        max_streams_per_connection=240,     # args of one request are limited to 64 KiB
        max_messages_per_second=3.0,        # OKX: 3 connection requests per second per IP
        stale_after_seconds={"trades": 60.0, "liquidations": 3600.0},
    )

    def subscribe_frames(self, subscription: Subscription) -> list[str]:
        args: list[dict[str, str]] = [{"channel": "trades", "instId": symbol} for symbol in subscription.trades]
        if subscription.all_liquidations or subscription.liquidations:
            args += [{"channel": "liquidation-orders", "instType": kind} for kind in LIQUIDATION_INST_TYPES]
        return op_subscribe(args, ARGS_PER_REQUEST)

    def events(self, message: Any, ts_recv: int) -> list[Event]:
        msg = obj(message, "frame")
        event = msg.get("event")
        if event is not None:
            if event in _IGNORED_EVENTS:
                return []
            raise FrameError(UNKNOWN_EVENT, f"event {str(event)[:20]!r}: {str(msg.get('msg'))[:80]}")
        channel = obj(msg.get("arg"), "arg").get("channel")
        data = items(msg.get("data"), "data")
        if channel == "trades":
            return [self._trade(entry, ts_recv) for entry in data]
        if channel == "liquidation-orders":
            return [liq for entry in data for liq in self._liquidations(obj(entry, "data[]"), ts_recv)]
        raise FrameError(UNKNOWN_EVENT, f"unknown channel {str(channel)[:40]!r}")

    def _trade(self, d: dict[str, Any], ts_recv: int) -> Event:
        side = d.get("side")
        return self.trade(d.get("instId"), TAKER.get(side) or choice(side, TAKER, "side"),  # type: ignore[arg-type]
                          d.get("px"), d.get("sz"), sequence_id(d, "tradeId"), epoch_ms(d.get("ts"), "ts"), ts_recv)

    def _liquidations(self, d: dict[str, Any], ts_recv: int) -> list[Event]:
        symbol = d.get("instId")
        out: list[Event] = []
        for detail in items(d.get("details"), "details"):
            x = obj(detail, "details[]")
            by_order = choice(x.get("side"), CLOSED_BY_ORDER, "side")
            pos_side = x.get("posSide")
            hedge = HEDGE_POSITION.get(pos_side) if pos_side.__class__ is str else None
            if hedge is not None and hedge != by_order:
                raise FrameError(BAD_VALUE, f"side {x['side']!r} cannot close a {pos_side!r} position")
            ts = epoch_ms(x.get("ts"), "ts")
            size, price = x.get("sz"), x.get("bkPx")
            out.append(self.liquidation(symbol, by_order, price, size,  # type: ignore[arg-type]
                                        f"{symbol}:{ts}:{x['side']}:{pos_side}:{size}:{price}", ts, ts_recv))
        return out


VENUE = Okx()
