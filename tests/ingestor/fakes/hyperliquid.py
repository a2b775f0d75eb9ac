"""Fake Hyperliquid websocket: subscriptionResponse acks, {"method":"ping"} -> {"channel":"pong"}, trades."""

from __future__ import annotations

from typing import Any

import orjson

from tests.ingestor.fakes.exchange import NoGreeting, dump


class HyperliquidProtocol(NoGreeting):
    def reply(self, message: str) -> list[str]:
        request = orjson.loads(message)
        method = request.get("method")
        if method == "ping":
            return [dump({"channel": "pong"})]
        if method == "subscribe" and isinstance(request.get("subscription"), dict):
            return [dump({"channel": "subscriptionResponse", "data": request})]
        return [dump({"channel": "error", "data": f"Error parsing JSON into valid websocket request: {message}"})]

    def topics(self, message: str) -> list[str]:
        request = orjson.loads(message)
        sub = request.get("subscription")
        if request.get("method") != "subscribe" or not isinstance(sub, dict):
            return []
        return [f"{sub.get('type')}:{sub.get('coin')}"]


def trade(coin: str, side: str, px: str, sz: str, ts: int, tid: int) -> dict[str, Any]:
    return {"coin": coin, "side": side, "px": px, "sz": sz, "time": ts,
            "hash": f"0x{tid:064x}", "tid": tid,
            "users": ["0x9b54264d7502f80163ea949038aad771eae67e38", "0x706bb519b05b7dc01d048af9a5e29d1ef5d6d9e3"]}


def trades_frame(rows: list[dict[str, Any]]) -> str:
    return dump({"channel": "trades", "data": rows})
