"""Fake HTX USDT-margined swap endpoints: gzip-compressed binary frames, server pings that need
pongs, ``sub`` acks on the market endpoint and ``op`` acks on the notification endpoint.

Both endpoints are served by one :class:`FakeExchange` (the runtime replaces the base URL, the
path selects the endpoint on HTX). The greeting is a market-style ping ``{"ping":n}``; the reply
to a liquidation ``op:sub`` is its ack followed by a notification-style ping ``{"op":"ping"}``:
the pongs the client sends back are recorded in ``received``.
"""

from __future__ import annotations

import gzip
from typing import Any

import orjson

from tests.ingestor.fakes.exchange import dump

PING_TS = 1737972000123


def wire(text: str) -> bytes:
    """A frame as HTX sends it: gzip-compressed JSON in a binary message."""
    return gzip.compress(text.encode(), mtime=0)


class HtxProtocol:
    def greeting(self) -> list[bytes]:
        return [wire(dump({"ping": PING_TS}))]

    def reply(self, message: str) -> list[bytes]:
        try:
            request = orjson.loads(message)
        except orjson.JSONDecodeError:
            return [wire(dump({"status": "error", "err-code": "bad-request", "err-msg": "invalid json",
                               "ts": PING_TS}))]
        if "pong" in request or request.get("op") == "pong":
            return []
        if "sub" in request:
            topic = str(request["sub"])
            if not topic.endswith(".trade.detail"):
                return [wire(dump({"status": "error", "err-code": "bad-request", "err-msg": f"invalid topic {topic}",
                                   "ts": PING_TS}))]
            return [wire(dump({"id": request.get("id"), "status": "ok", "subbed": topic, "ts": PING_TS}))]
        if request.get("op") == "sub":
            return [wire(dump({"op": "sub", "cid": request.get("cid"), "topic": request.get("topic"), "ts": PING_TS,
                               "err-code": 0})),
                    wire(dump({"op": "ping", "ts": str(PING_TS)}))]
        return [wire(dump({"op": "error", "ts": PING_TS, "err-code": 4000, "err-msg": "invalid op"}))]

    def topics(self, message: str) -> list[str]:
        request = orjson.loads(message)
        if "sub" in request:
            return [str(request["sub"])]
        if request.get("op") == "sub":
            return [str(request.get("topic"))]
        return []


def trade(trade_id: int, ts: int, price: float, contracts: int, contract_size: float, direction: str) -> dict[str, Any]:
    return {"amount": contracts, "ts": ts, "id": trade_id, "price": price, "direction": direction,
            "quantity": round(contracts * contract_size, 10),
            "trade_turnover": round(contracts * contract_size * price, 6)}


def trades_frame(code: str, rows: list[dict[str, Any]], ts: int = 1737972000400) -> str:
    return dump({"ch": f"market.{code}.trade.detail", "ts": ts, "tick": {"id": rows[0]["id"] // 10000 if rows else 1,
                                                                        "ts": ts, "data": rows}})


def liquidation(code: str, direction: str, volume: int, contract_size: float, price: float, ts: int) -> dict[str, Any]:
    base = code.split("-")[0]
    return {"symbol": base, "contract_code": code, "direction": direction, "offset": "close", "volume": volume,
            "amount": round(volume * contract_size, 10), "trade_turnover": round(volume * contract_size * price, 6),
            "price": price, "created_at": ts, "contract_type": "swap", "pair": code, "business_type": "swap"}


def liquidations_frame(code: str, rows: list[dict[str, Any]], ts: int = 1737972000500) -> str:
    return dump({"op": "notify", "topic": f"public.{code}.liquidation_orders", "ts": ts, "data": rows})
