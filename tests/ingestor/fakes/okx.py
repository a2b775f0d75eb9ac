"""Fake OKX v5 public endpoint: per-arg subscribe events, text ping/pong, trades and liquidation-orders."""

from __future__ import annotations

from typing import Any

import orjson

from tests.ingestor.fakes.exchange import NoGreeting, dump

CONN_ID = "a4d3ae55"


def _topic(arg: dict[str, str]) -> str:
    return f"{arg.get('channel')}:{arg.get('instId') or arg.get('instType')}"


class OkxProtocol(NoGreeting):
    def reply(self, message: str) -> list[str]:
        if message == "ping":
            return ["pong"]
        try:
            request = orjson.loads(message)
        except orjson.JSONDecodeError:
            return [dump({"event": "error", "code": "60012", "msg": f"Invalid request: {message}",
                           "connId": CONN_ID})]
        if request.get("op") != "subscribe":
            return [dump({"event": "error", "code": "60012", "msg": "Invalid request", "connId": CONN_ID})]
        return [dump({"event": "subscribe", "arg": arg, "connId": CONN_ID}) for arg in request.get("args", [])]

    def topics(self, message: str) -> list[str]:
        if message == "ping":
            return []
        request = orjson.loads(message)
        return [_topic(arg) for arg in request.get("args", [])] if request.get("op") == "subscribe" else []


def trade(inst_id: str, trade_id: str, px: str, sz: str, side: str, ts: int) -> dict[str, Any]:
    return {"instId": inst_id, "tradeId": trade_id, "px": px, "sz": sz, "side": side, "ts": str(ts),
            "count": "1", "source": "0", "seqId": 1234567}


def trades_frame(inst_id: str, rows: list[dict[str, Any]]) -> str:
    return dump({"arg": {"channel": "trades", "instId": inst_id}, "data": rows})


def detail(side: str, pos_side: str, sz: str, bk_px: str, ts: int) -> dict[str, Any]:
    return {"bkLoss": "0", "bkPx": bk_px, "ccy": "", "posSide": pos_side, "side": side, "sz": sz, "ts": str(ts)}


def liquidations_frame(inst_type: str, inst_id: str, details: list[dict[str, Any]]) -> str:
    family = "-".join(inst_id.split("-")[:2])
    return dump({"arg": {"channel": "liquidation-orders", "instType": inst_type},
                  "data": [{"details": details, "instFamily": family, "instId": inst_id,
                            "instType": inst_type, "uly": family}]})
