"""Fake Kraken Futures v1 endpoint: info greeting, subscribe/subscribed, heartbeat feed, trade frames."""

from __future__ import annotations

from typing import Any

import orjson

from tests.ingestor.fakes.exchange import dump

FEEDS = ("trade", "heartbeat")


class KrakenFuturesProtocol:
    def greeting(self) -> list[str]:
        return [dump({"event": "info", "version": 1})]

    def reply(self, message: str) -> list[str]:
        try:
            request = orjson.loads(message)
        except orjson.JSONDecodeError:
            return [dump({"event": "error", "message": "Json Error"})]
        feed = request.get("feed")
        if request.get("event") != "subscribe" or feed not in FEEDS:
            return [dump({"event": "error", "message": "Invalid feed"})]
        if feed == "heartbeat":
            return [dump({"event": "subscribed", "feed": "heartbeat"}), dump({"feed": "heartbeat", "time": 1737972000000})]
        return [dump({"event": "subscribed", "feed": "trade", "product_ids": request.get("product_ids", [])})]

    def topics(self, message: str) -> list[str]:
        request = orjson.loads(message)
        if request.get("feed") == "heartbeat":
            return ["heartbeat"]
        return [f"trade:{product}" for product in request.get("product_ids", [])]


def trade(product_id: str, uid: str, side: str, kind: str, seq: int, ts: int, qty: float, price: float) -> dict[str, Any]:
    return {"feed": "trade", "product_id": product_id, "uid": uid, "side": side, "type": kind, "seq": seq,
            "time": ts, "qty": qty, "price": price}


def trade_frame(row: dict[str, Any]) -> str:
    return dump(row)


def snapshot_frame(product_id: str, rows: list[dict[str, Any]]) -> str:
    return dump({"feed": "trade_snapshot", "product_id": product_id, "trades": rows})
