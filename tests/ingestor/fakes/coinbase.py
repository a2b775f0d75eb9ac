"""Fake Coinbase Exchange websocket feed: ``subscriptions`` reply, ``last_match`` then ``match``es."""

from __future__ import annotations

from typing import Any

import orjson

from tests.ingestor.fakes.exchange import NoGreeting, dump


class CoinbaseProtocol(NoGreeting):
    def reply(self, message: str) -> list[str]:
        request = orjson.loads(message)
        if request.get("type") != "subscribe":
            return [dump({"type": "error", "message": "Failed to subscribe",
                           "reason": f"{request.get('type')} is not a valid message type"})]
        products = list(request.get("product_ids", []))
        out = [dump({"type": "subscriptions",
                      "channels": [{"name": "matches", "product_ids": products, "account_ids": None}]})]
        out += [dump({**match(1, product, "buy", "0.5", "100000.00", "2025-01-27T09:59:59.000000Z"),
                       "type": "last_match"}) for product in products]
        return out

    def topics(self, message: str) -> list[str]:
        request = orjson.loads(message)
        if request.get("type") != "subscribe":
            return []
        return [f"{channel}:{product}" for channel in request.get("channels", [])
                for product in request.get("product_ids", [])]


def match(trade_id: int, product: str, maker_side: str, size: str, price: str, time: str) -> dict[str, Any]:
    return {"type": "match", "trade_id": trade_id, "maker_order_id": "ac928c66-ca53-498f-9c13-a110027a60e8",
            "taker_order_id": "132fb6ae-456b-4654-b4e0-d681ac05cea1", "side": maker_side, "size": size,
            "price": price, "product_id": product, "sequence": 50_000_000 + trade_id, "time": time}


def match_frame(row: dict[str, Any]) -> str:
    return dump(row)
