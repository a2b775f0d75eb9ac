"""Fake Gate futures v4 endpoint: subscribe acks, futures.ping/pong, trades and public_liquidates."""

from __future__ import annotations

from typing import Any

import orjson

from tests.ingestor.fakes.exchange import NoGreeting, dump

CONN_ID = "5e74253e9c793974"


class GateProtocol(NoGreeting):
    def reply(self, message: str) -> list[str]:
        request = orjson.loads(message)
        channel = request.get("channel")
        now = int(request.get("time") or 1737972000)
        head = {"time": now, "time_ms": now * 1000 + 123, "conn_id": CONN_ID, "trace_id": "f1e2d3"}
        if channel == "futures.ping":
            return [dump({**head, "channel": "futures.pong", "event": "", "result": None})]
        if request.get("event") == "subscribe":
            if channel not in ("futures.trades", "futures.public_liquidates"):
                return [dump({**head, "channel": channel, "event": "subscribe", "payload": request.get("payload"),
                               "error": {"code": 2, "message": f"unknown channel {channel}"}, "result": None})]
            return [dump({**head, "channel": channel, "event": "subscribe", "payload": request.get("payload"),
                           "error": None, "result": {"status": "success"}})]
        return []

    def topics(self, message: str) -> list[str]:
        request = orjson.loads(message)
        if request.get("event") != "subscribe":
            return []
        return [f"{request['channel']}:{contract}" for contract in request.get("payload", [])]


def trade(contract: str, trade_id: int, size: int, price: str, ts_ms: int) -> dict[str, Any]:
    return {"size": size, "id": trade_id, "create_time": ts_ms // 1000, "create_time_ms": ts_ms,
            "price": price, "contract": contract, "is_internal": False}


def update_frame(channel: str, rows: list[dict[str, Any]], ts_ms: int = 1737972000500) -> str:
    return dump({"time": ts_ms // 1000, "time_ms": ts_ms, "channel": channel, "event": "update", "result": rows})


def liquidation(contract: str, size: int, price: str, ts_ms: int) -> dict[str, Any]:
    return {"price": price, "size": size, "time_ms": ts_ms, "contract": contract}
