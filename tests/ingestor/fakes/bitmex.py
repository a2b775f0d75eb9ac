"""Fake BitMEX realtime endpoint: welcome, per-arg subscribe acks plus the trade ``partial``, ping/pong."""

from __future__ import annotations

from typing import Any

import orjson

from tests.ingestor.fakes.exchange import dump

WELCOME = {"info": "Welcome to the BitMEX Realtime API.", "version": "2.0.0",
           "timestamp": "2025-01-27T10:00:00.000Z", "docs": "https://www.bitmex.com/app/wsAPI",
           "heartbeatEnabled": False, "limit": {"remaining": 39}}


class BitmexProtocol:
    def greeting(self) -> list[str]:
        return [dump(WELCOME)]

    def reply(self, message: str) -> list[str]:
        if message == "ping":
            return ["pong"]
        try:
            request = orjson.loads(message)
        except orjson.JSONDecodeError:
            return [dump({"status": 400, "error": "Unable to parse request.", "meta": {}})]
        if request.get("op") != "subscribe":
            return [dump({"status": 400, "error": f"Unknown or unsupported operation: {request.get('op')}",
                           "meta": {}, "request": request})]
        out = []
        for arg in request.get("args", []):
            out.append(dump({"success": True, "subscribe": arg, "request": request}))
            table, _, symbol = arg.partition(":")
            if table == "trade":     # BitMEX sends recent history as a partial on subscribe
                out.append(dump({"table": "trade", "action": "partial", "keys": [], "types": {},
                                  "filter": {"symbol": symbol},
                                  "data": [trade("2025-01-27T09:59:59.000Z", symbol, "Buy", 100, 101000.0,
                                                 "00000000-0000-0000-0000-000000000000")]}))
        return out

    def topics(self, message: str) -> list[str]:
        if message == "ping":
            return []
        request = orjson.loads(message)
        return list(request.get("args", [])) if request.get("op") == "subscribe" else []


def trade(timestamp: str, symbol: str, side: str, size: int, price: float, match_id: str) -> dict[str, Any]:
    return {"timestamp": timestamp, "symbol": symbol, "side": side, "size": size, "price": price,
            "tickDirection": "PlusTick", "trdMatchID": match_id, "grossValue": 99009, "homeNotional": 0.00099009,
            "foreignNotional": 100, "trdType": "Regular"}


def table_frame(table: str, action: str, rows: list[dict[str, Any]]) -> str:
    return dump({"table": table, "action": action, "data": rows})


def liquidation(order_id: str, symbol: str, side: str, price: float, leaves_qty: int) -> dict[str, Any]:
    return {"orderID": order_id, "symbol": symbol, "side": side, "price": price, "leavesQty": leaves_qty}
