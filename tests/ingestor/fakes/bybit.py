"""Fake Bybit v5 public linear endpoint: op-style subscribe acks (max 10 args), ping/pong, frames."""

from __future__ import annotations

from typing import Any

import orjson

from tests.ingestor.fakes.exchange import NoGreeting, dump

CONN_ID = "cjxn2ka4b7cm2a9k1ag0-4ajj"
MAX_ARGS = 10


class BybitProtocol(NoGreeting):
    def reply(self, message: str) -> list[str]:
        request = orjson.loads(message)
        op = request.get("op")
        if op == "ping":
            return [dump({"success": True, "ret_msg": "pong", "conn_id": CONN_ID, "req_id": "", "op": "ping"})]
        if op == "subscribe":
            args = request.get("args", [])
            if len(args) > MAX_ARGS:
                return [dump({"success": False, "ret_msg": f"error:args size >{MAX_ARGS}",
                               "conn_id": CONN_ID, "req_id": "", "op": "subscribe"})]
            return [dump({"success": True, "ret_msg": "", "conn_id": CONN_ID, "req_id": "", "op": "subscribe"})]
        return [dump({"success": False, "ret_msg": f"error:handler not found op:{op}", "conn_id": CONN_ID,
                       "op": op})]

    def topics(self, message: str) -> list[str]:
        request = orjson.loads(message)
        if request.get("op") == "subscribe" and len(request.get("args", [])) <= MAX_ARGS:
            return list(request["args"])
        return []


def trade(ts: int, symbol: str, side: str, size: str, price: str, trade_id: str) -> dict[str, Any]:
    return {"T": ts, "s": symbol, "S": side, "v": size, "p": price, "L": "PlusTick", "i": trade_id,
            "BT": False, "RPI": False, "seq": 1783284617}


def trades_frame(symbol: str, rows: list[dict[str, Any]], ts: int = 1737972000100) -> str:
    return dump({"topic": f"publicTrade.{symbol}", "type": "snapshot", "ts": ts, "data": rows})


def liquidation(ts: int, symbol: str, position_side: str, size: str, price: str) -> dict[str, Any]:
    return {"T": ts, "s": symbol, "S": position_side, "v": size, "p": price}


def liquidations_frame(symbol: str, rows: list[dict[str, Any]], ts: int = 1737972000200) -> str:
    return dump({"topic": f"allLiquidation.{symbol}", "type": "snapshot", "ts": ts, "data": rows})
