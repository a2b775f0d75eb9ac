"""Fake Deribit JSON-RPC v2 endpoint: public/subscribe and public/test replies, trade notifications."""

from __future__ import annotations

from typing import Any

import orjson

from tests.ingestor.fakes.exchange import NoGreeting, dump


def _envelope(request_id: Any, result: Any) -> str:
    return dump({"jsonrpc": "2.0", "id": request_id, "result": result, "usIn": 1737972000000123,
                  "usOut": 1737972000000456, "usDiff": 333, "testnet": False})


class DeribitProtocol(NoGreeting):
    def reply(self, message: str) -> list[str]:
        request = orjson.loads(message)
        method = request.get("method")
        if method == "public/subscribe":
            return [_envelope(request.get("id"), list(request["params"]["channels"]))]
        if method == "public/test":
            return [_envelope(request.get("id"), {"version": "1.2.26"})]
        return [dump({"jsonrpc": "2.0", "id": request.get("id"),
                       "error": {"message": "Method not found", "code": -32601}, "testnet": False})]

    def topics(self, message: str) -> list[str]:
        request = orjson.loads(message)
        return list(request["params"]["channels"]) if request.get("method") == "public/subscribe" else []


def trade(instrument: str, trade_id: str, seq: int, ts: int, direction: str, price: float, amount: float,
          liquidation: str | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {"trade_seq": seq, "trade_id": trade_id, "timestamp": ts, "tick_direction": 0,
                           "price": price, "mark_price": price, "instrument_name": instrument,
                           "index_price": price, "direction": direction, "amount": amount,
                           "contracts": amount / 10}
    if liquidation is not None:
        row["liquidation"] = liquidation
    return row


def trades_frame(instrument: str, rows: list[dict[str, Any]], interval: str = "100ms") -> str:
    return dump({"jsonrpc": "2.0", "method": "subscription",
                  "params": {"channel": f"trades.{instrument}.{interval}", "data": rows}})
