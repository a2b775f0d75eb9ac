"""OKX v5 public: ``trades`` per instrument and ``liquidation-orders`` streamed per instType.

- Subscribe ``{"op":"subscribe","args":[{"channel":"trades","instId":"BTC-USDT-SWAP"}, ...]}`` and
  ``{"channel":"liquidation-orders","instType":"SWAP"}`` / ``"FUTURES"`` (all instruments of the
  type; OKX has no per-instrument liquidation channel). Replies ``{"event":"subscribe",...}`` are
  ignored; ``{"event":"error","code","msg"}`` is dead-lettered (``unknown_event``).
- Heartbeat: text ``ping`` at least every 30 s (OKX closes a connection silent for 30 s); the
  reply is the text ``pong``.
- ``trades`` data ``{instId, tradeId, px, sz, side, ts, count}``: ``side`` is the taker side,
  ``sz`` is in contracts (SWAP/FUTURES: × ``ctVal`` = base units; inverse ``BTC-USD-SWAP``: USD
  per contract), ``tradeId`` is sequential per instrument (gap detection applies). OKX aggregates
  the fills of one taker order at one price: ``tradeId`` is the **last** id and ``count`` how many
  fills (ids) the row covers (tradeId 123, count 3 = ids 121-123), reported to gap detection.
- ``liquidation-orders`` data ``{instId, instType, details: [{side, posSide, bkPx, sz, ts, ...}]}``:
  ``side`` is the side of the liquidation **order** (``sell`` closes a long, ``buy`` a short);
  ``posSide`` is ``long``/``short`` in long/short (hedge) mode, ``net`` in net mode. The closed
  position is ``posSide`` when it is ``long``/``short`` (it must agree with ``side``), else derived
  from ``side``. Price is ``bkPx`` (bankruptcy price), size ``sz`` contracts.
"""

from __future__ import annotations

from typing import Any

from services.ingestor.venues.base import (
    BAD_FIELD,
    BAD_VALUE,
    UNKNOWN_EVENT,
    ConnectionRules,
    ContractKind,
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
    make_instrument,
    obj,
    one_row,
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

    rest_instrument_urls = ("https://www.okx.com/api/v5/public/instruments?instType=SWAP",
                            "https://www.okx.com/api/v5/public/instruments?instType=FUTURES")

    @staticmethod
    def parse_rest_instruments(body: Any) -> list[Instrument]:
        """``GET /api/v5/public/instruments?instType=SWAP|FUTURES``: live instruments; ``ctVal`` is
        base units per contract (linear) or USD per contract (``ctType`` inverse)."""
        out: list[Instrument] = []
        for item in body.get("data", []) if isinstance(body, dict) else []:
            if item.get("state") != "live":
                continue
            market = "perp" if item.get("instType") == "SWAP" else "future"
            base, quote = str(item.get("uly", item["instId"])).split("-")[:2]
            kind: ContractKind = "inverse" if item.get("ctType") == "inverse" else "linear"
            expiry = int(item.get("expTime") or 0) if market == "future" else None
            out.append(make_instrument("okx", item["instId"], base, quote, market, kind, float(item["ctVal"]), expiry))
        return out

    def subscribe_frames(self, subscription: Subscription) -> list[str]:
        args: list[dict[str, str]] = [{"channel": "trades", "instId": symbol} for symbol in subscription.trades]
        if subscription.all_liquidations or subscription.liquidations:
            args += [{"channel": "liquidation-orders", "instType": kind} for kind in LIQUIDATION_INST_TYPES]
        return op_subscribe(args, ARGS_PER_REQUEST)

    def events(self, message: Any, ts_recv: int, out: Parsed) -> None:
        msg = obj(message, "frame")
        event = msg.get("event")
        if event is not None:
            if event in _IGNORED_EVENTS:
                return
            raise FrameError(UNKNOWN_EVENT, f"event {str(event)[:20]!r}: {str(msg.get('msg'))[:80]}")
        channel = obj(msg.get("arg"), "arg").get("channel")
        if channel == "trades":
            self.rows(out, msg.get("data"), "data", self._trade, ts_recv, one_row(msg, "data"))
        elif channel == "liquidation-orders":
            self.rows(out, msg.get("data"), "data", lambda entry, ts, into: self._liquidations(msg, entry, ts, into),
                      ts_recv, one_row(msg, "data"))
        else:
            raise FrameError(UNKNOWN_EVENT, f"unknown channel {str(channel)[:40]!r}")

    def _trade(self, d: dict[str, Any], ts_recv: int, out: Parsed) -> None:
        side = d.get("side")
        trade_id = sequence_id(d, "tradeId")
        count = d.get("count")
        if count is not None and count != "1":       # aggregated fills: tradeId is the last of `count` ids
            fills = fill_count(count)
            if fills > int(trade_id) + 1:
                raise FrameError(BAD_VALUE, f"count {fills} exceeds tradeId {trade_id} + 1")
            if fills > 1:
                out.spans[len(out.events)] = fills
        out.events.append(self.trade(d.get("instId"), TAKER.get(side) or choice(side, TAKER, "side"),  # type: ignore[arg-type]
                                     d.get("px"), d.get("sz"), trade_id, epoch_ms(d.get("ts"), "ts"), ts_recv))

    def _liquidations(self, msg: dict[str, Any], entry: Any, ts_recv: int, out: Parsed) -> None:
        """Each detail of an entry is a row: a bad detail (or every detail of an entry whose
        instrument is unknown) is dead-lettered alone as a one-detail frame."""
        entry = obj(entry, "data[]")
        symbol = entry.get("instId")

        def detail(x: Any, ts_recv: int, out: Parsed) -> None:
            x = obj(x, "details[]")
            by_order = choice(x.get("side"), CLOSED_BY_ORDER, "side")
            pos_side = x.get("posSide")
            hedge = HEDGE_POSITION.get(pos_side) if pos_side.__class__ is str else None
            if hedge is not None and hedge != by_order:
                raise FrameError(BAD_VALUE, f"side {x['side']!r} cannot close a {pos_side!r} position")
            ts = epoch_ms(x.get("ts"), "ts")
            size, price = x.get("sz"), x.get("bkPx")
            out.events.append(self.liquidation(symbol, by_order, price, size,  # type: ignore[arg-type]
                                               f"{symbol}:{ts}:{x['side']}:{pos_side}:{size}:{price}", ts, ts_recv))

        self.rows(out, entry.get("details"), "details", detail, ts_recv,
                  lambda x: {**msg, "data": [{**entry, "details": [x]}]})


def fill_count(value: Any) -> int:
    """OKX ``count``: how many fills one aggregated trade holds (a positive integer, JSON or string)."""
    if value.__class__ is str and value.isdigit() and len(value) <= 9:
        value = int(value)
    if value.__class__ is int and 0 < value < 10**9:
        return int(value)
    raise FrameError(BAD_FIELD, f"count must be a positive integer, got {str(value)[:20]!r}")
