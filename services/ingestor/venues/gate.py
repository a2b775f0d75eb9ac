"""Gate futures (USDT-settled) v4: ``futures.trades`` and the public ``futures.public_liquidates``.

- Subscribe ``{"time":<epoch s>,"channel":"futures.trades","event":"subscribe","payload":[contracts]}``
  (``futures.public_liquidates`` takes contracts — the explicit ones, else the listed instruments
  of the table — or ``["!all"]`` when there are none). Replies
  ``{"channel",...,"event":"subscribe","result":{"status":"success"}}`` are ignored; a reply with
  an ``error`` object is dead-lettered. (``futures.liquidates`` is the private, per-user channel.)
- Heartbeat: ``{"channel":"futures.ping"}`` every 15 s; the reply has ``"channel":"futures.pong"``.
- ``futures.trades`` ``result`` rows ``{id, create_time, create_time_ms, price, size, contract,
  is_internal?}``: ``size`` is a **signed** number of contracts, negative = the taker sold; × the
  contract's ``quanto_multiplier`` (``contract_size``) = base units. Rows with ``is_internal``
  true (insurance-fund/ADL takeovers, not market trades) are skipped. Older payloads carry only
  ``create_time`` (epoch seconds): without ``create_time_ms`` the event time is that second.
- ``futures.public_liquidates`` rows ``{contract, price, size, time_ms}`` (at most one per contract
  per second): ``size`` is the signed size of the liquidation **order**: positive = a forced buy,
  which closes a **short**; negative = a forced sell, which closes a **long**.
"""

from __future__ import annotations

import time
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
from services.ingestor.venues.common import (
    Adapter,
    epoch_ms,
    ident,
    liquidation_symbols,
    nonzero,
    normalized_name,
    obj,
    one_row,
    seconds_ms,
)

TRADES = "futures.trades"
LIQUIDATIONS = "futures.public_liquidates"
ALL_CONTRACTS = "!all"
_CONTROL_CHANNELS = frozenset(("futures.pong", "futures.ping"))
_CONTROL_EVENTS = frozenset(("subscribe", "unsubscribe"))


class Gate(Adapter):
    id = "gate"
    sequential_trade_ids = False     # ids increase across all contracts, not per contract
    channel_markers = ((f'"{TRADES}"', "trades"), (f'"{LIQUIDATIONS}"', "liquidations"))
    rules = ConnectionRules(
        url="wss://fx-ws.gateio.ws/v4/ws/usdt",
        heartbeat=Heartbeat(payload='{"channel":"futures.ping"}', interval=15.0),
        max_streams_per_connection=200,
        max_messages_per_second=5.0,
        stale_after_seconds={"trades": 60.0, "liquidations": 3600.0},
    )

    rest_instrument_urls = ("https://api.gateio.ws/api/v4/futures/usdt/contracts",)

    @staticmethod
    def parse_rest_instruments(body: Any) -> list[Instrument]:
        """``GET /api/v4/futures/usdt/contracts``: ``[{name, quanto_multiplier, in_delisting}]``
        (``quanto_multiplier`` = base units per contract of these USDT-settled contracts)."""
        out = []
        for item in body if isinstance(body, list) else []:
            name = str(item.get("name", ""))
            base, _, quote = name.partition("_")
            if not base or not quote or item.get("in_delisting"):
                continue
            out.append(Instrument("gate", name, normalized_name(base, quote, "perp"), base, quote, "perp", "linear",
                                  float(item["quanto_multiplier"])))
        return out

    def subscribe_frames(self, subscription: Subscription) -> list[str]:
        now = int(time.time())
        frames: list[dict[str, Any]] = []
        if subscription.trades:
            frames.append({"time": now, "channel": TRADES, "event": "subscribe",
                           "payload": list(subscription.trades)})
        if subscription.liquidations or subscription.all_liquidations:
            contracts = list(liquidation_symbols(subscription, self.instruments)) or [ALL_CONTRACTS]
            frames.append({"time": now, "channel": LIQUIDATIONS, "event": "subscribe", "payload": contracts})
        return [orjson.dumps(frame).decode() for frame in frames]

    def events(self, message: Any, ts_recv: int, out: Parsed) -> None:
        msg = obj(message, "frame")
        channel = msg.get("channel")
        event = msg.get("event")
        if msg.get("error") is not None:
            raise FrameError(UNKNOWN_EVENT, f"error reply on {str(channel)[:40]}: {str(msg['error'])[:80]}")
        if channel in _CONTROL_CHANNELS or event in _CONTROL_EVENTS:
            return
        if event != "update":
            raise FrameError(UNKNOWN_EVENT, f"unknown event {str(event)[:20]!r} on {str(channel)[:40]}")
        if channel == TRADES:
            self.rows(out, msg.get("result"), "result", self._trade, ts_recv, one_row(msg, "result"))
        elif channel == LIQUIDATIONS:
            self.rows(out, msg.get("result"), "result", self._liquidation, ts_recv, one_row(msg, "result"))
        else:
            raise FrameError(UNKNOWN_EVENT, f"unknown channel {str(channel)[:40]!r}")

    def _trade(self, d: dict[str, Any], ts_recv: int, out: Parsed) -> None:
        if d.get("is_internal") is True:
            return
        size = nonzero(d.get("size"), "size")
        ms = d.get("create_time_ms")
        ts = epoch_ms(ms, "create_time_ms") if ms is not None else seconds_ms(d.get("create_time"), "create_time")
        out.events.append(self.trade(d.get("contract"), "sell" if size < 0 else "buy", d.get("price"), abs(size),
                                     ident(d, "id"), ts, ts_recv))

    def _liquidation(self, d: Any, ts_recv: int, out: Parsed) -> None:
        d = obj(d, "result[]")
        symbol, raw_size, price = d.get("contract"), d.get("size"), d.get("price")
        size = nonzero(raw_size, "size")
        ts = epoch_ms(d.get("time_ms"), "time_ms")
        out.events.append(self.liquidation(symbol, "short" if size > 0 else "long", price, abs(size),
                                           f"{symbol}:{ts}:{raw_size}:{price}", ts, ts_recv))
