"""BitMEX realtime: the ``trade`` and ``liquidation`` tables.

- Subscribe ``{"op":"subscribe","args":["trade:XBTUSD","liquidation:XBTUSD", ...]}``: liquidations
  of the explicit symbols, else of the table's listed instruments, else ``"liquidation"`` alone
  (every instrument). The welcome ``{"info":...}`` and the replies
  ``{"success":true,"subscribe":...}`` are ignored; ``{"error":...}`` is dead-lettered.
- Heartbeat: text ``ping`` (BitMEX closes idle connections); the reply is the text ``pong``.
- Table frames are ``{"table","action","data":[...]}`` with ``action`` one of
  ``partial|insert|update|delete``. ``trade``: only ``insert`` rows are new trades (the ``partial``
  sent on subscribe repeats recent history and is ignored). Row ``{timestamp, symbol, side, size,
  price, trdMatchID, homeNotional, foreignNotional}``: ``side`` is the **taker** side, ``size``
  contracts — inverse ``XBTUSD``: 1 USD per contract; linear ``XBTUSDT``: 1e-6 XBT per contract;
  quanto (``ETHUSD``): base units per contract from the instrument table.
- ``liquidation``: an ``insert`` is a new liquidation order ``{orderID, symbol, side, price,
  leavesQty}``; ``side`` is the **order** side (``Sell`` closes a long → ``long``, ``Buy`` →
  ``short``); later ``update``/``delete`` rows for the same ``orderID`` (fills, removal) are
  ignored. The table has no timestamp, so ``ts`` is the receipt time.
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
    iso_ms,
    liquidation_symbols,
    normalized_name,
    obj,
    one_row,
    op_subscribe,
    text,
)

TAKER = {"Buy": "buy", "Sell": "sell"}
CLOSED_BY_ORDER = {"Sell": "long", "Buy": "short"}
ARGS_PER_REQUEST = 20
_ACTIONS = frozenset(("partial", "insert", "update", "delete"))
_REST_TYPES = {"FFWCSX": "perp", "FFCCSX": "future"}
_BASES = {"XBT": "BTC"}


class Bitmex(Adapter):
    id = "bitmex"
    sequential_trade_ids = False      # trdMatchID is a UUID
    control_frames = frozenset(("pong",))
    channel_markers = (('"table":"trade"', "trades"), ('"table":"liquidation"', "liquidations"))
    rules = ConnectionRules(
        url="wss://ws.bitmex.com/realtime",
        heartbeat=Heartbeat(payload="ping", interval=20.0, pong_prefixes=("pong",)),
        max_streams_per_connection=100,
        max_messages_per_second=1.0,     # BitMEX limits subscription requests per connection
        stale_after_seconds={"trades": 60.0, "liquidations": 6 * 3600.0},
    )

    rest_instrument_urls = ("https://www.bitmex.com/api/v1/instrument/active",)

    @staticmethod
    def parse_rest_instruments(body: Any) -> list[Instrument]:
        """``GET /api/v1/instrument/active``: perpetuals (``typ`` FFWCSX) and futures (FFCCSX) that
        are ``Open``. Inverse: 1 USD per contract; linear: ``1 / underlyingToPositionMultiplier``
        base units; quanto: ``multiplier`` satoshi × price per contract, i.e. ``multiplier × 1e-8 ×
        XBTUSD`` base units, taken at the refresh's XBTUSD ``markPrice``."""
        rows = [item for item in body if isinstance(item, dict)] if isinstance(body, list) else []
        btc_usd = next((float(item.get("markPrice") or item.get("lastPrice") or 0) for item in rows
                        if item.get("symbol") == "XBTUSD"), 0.0)
        out = []
        for item in rows:
            typ = item.get("typ")
            if typ not in _REST_TYPES or item.get("state") != "Open":
                continue
            base = _BASES.get(str(item["rootSymbol"]), str(item["rootSymbol"]))
            quote, market = str(item["quoteCurrency"]), _REST_TYPES[typ]
            if item.get("isInverse"):
                kind, size = "inverse", 1.0
            elif item.get("isQuanto"):
                kind, size = "quanto", abs(float(item["multiplier"])) * 1e-8 * btc_usd
            else:
                kind, size = "linear", 1.0 / float(item["underlyingToPositionMultiplier"])
            if size <= 0:
                continue
            expiry = iso_ms(item["expiry"], "expiry") if market == "future" else None
            out.append(Instrument("bitmex", str(item["symbol"]), normalized_name(base, quote, market, expiry), base,
                                  quote, market, kind, size))  # type: ignore[arg-type]
        return out

    def subscribe_frames(self, subscription: Subscription) -> list[str]:
        args = [f"trade:{symbol}" for symbol in subscription.trades]
        symbols = liquidation_symbols(subscription, self.instruments)
        if symbols:
            args += [f"liquidation:{symbol}" for symbol in symbols]
        elif subscription.all_liquidations:
            args.append("liquidation")          # every instrument
        return op_subscribe(args, ARGS_PER_REQUEST)

    def events(self, message: Any, ts_recv: int, out: Parsed) -> None:
        msg = obj(message, "frame")
        table = msg.get("table")
        if table is None:
            if "error" in msg:
                raise FrameError(UNKNOWN_EVENT, f"error reply: {str(msg['error'])[:80]}")
            if "info" in msg or "success" in msg or "subscribe" in msg:
                return
            raise FrameError(UNKNOWN_EVENT, "frame without table")
        action = msg.get("action")
        if action not in _ACTIONS:
            raise FrameError(UNKNOWN_EVENT, f"unknown action {str(action)[:20]!r}")
        if table == "trade":
            if action == "insert":
                self.rows(out, msg.get("data"), "data", self._trade, ts_recv, one_row(msg, "data"))
        elif table == "liquidation":
            if action == "insert":
                self.rows(out, msg.get("data"), "data", self._liquidation, ts_recv, one_row(msg, "data"))
        else:
            raise FrameError(UNKNOWN_EVENT, f"unknown table {str(table)[:40]!r}")

    def _trade(self, d: dict[str, Any], ts_recv: int, out: Parsed) -> None:
        side = d.get("side")
        out.events.append(self.trade(d.get("symbol"), TAKER.get(side) or choice(side, TAKER, "side"),  # type: ignore[arg-type]
                                     d.get("price"), d.get("size"), text(d, "trdMatchID"),
                                     iso_ms(d.get("timestamp"), "timestamp"), ts_recv))

    def _liquidation(self, d: Any, ts_recv: int, out: Parsed) -> None:
        d = obj(d, "data[]")
        out.events.append(self.liquidation(d.get("symbol"), choice(d.get("side"), CLOSED_BY_ORDER, "side"),  # type: ignore[arg-type]
                                           d.get("price"), d.get("leavesQty"), text(d, "orderID"), ts_recv, ts_recv))
