"""Every message sent and received in a session validates against schemas/asyncapi.yaml."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import websockets

from services.common import topics
from services.gateway import protocol
from tests.common.payloads import asyncapi_doc, message_validator
from tests.gateway.conftest import running_gateway, ws_url
from tests.gateway.helpers import produce, recv_until

DOC: dict[str, Any] = asyncapi_doc()


def validate(name: str, message: dict[str, Any]) -> None:
    """Validate against components.messages.<name>.payload (the data typed by the channel's family)."""
    message_validator(name).validate(message)


def sector(v: int) -> dict[str, Any]:
    """A sector-cap record (its schema's required fields) marked with ``v``."""
    return {"sector": "ai", "cap_usd": 1e11 + v, "change_24h_pct": -10.0, "volume_24h_usd": 5e9,
            "volume_change_24h_pct": 30.0, "members": [{"asset": "FET", "change_24h_pct": -10.4}],
            "ts": 1737936000000 + v, "ts_emit": 1737936000500 + v, "v": v}


def test_document_lists_every_error_code_and_family() -> None:
    codes = set(DOC["components"]["messages"]["error"]["payload"]["properties"]["code"]["enum"])
    declared = {v for k, v in vars(protocol.Err).items() if k.isupper()}
    assert declared <= codes
    addresses = {c["address"] for c in DOC["channels"].values()}
    assert {topic.name for topic, _ in protocol.FAMILIES.values()} <= addresses


def test_session_messages_conform(broker) -> None:  # type: ignore[no-untyped-def]
    requests: list[dict[str, Any]] = [
        {"op": "subscribe", "id": 1, "channels": ["sector:*", "alerts:rsi_cross"], "history": 2},
        {"op": "ping", "id": "x"},
        {"op": "subscribe", "id": 2, "channels": ["sector:ai"], "since": {"sector:ai": 0}},
        {"op": "subscribe", "id": 5, "channels": ["sector:ai"], "since": {"sector:ai": {"seq": 1, "epoch": "0-0-1"}}},
        {"op": "unsubscribe", "id": 3, "channels": ["alerts:rsi_cross"]},
    ]

    async def scenario() -> list[dict[str, Any]]:
        await produce(broker.bootstrap, [(topics.SECTOR_CAPS.name, "ai", sector(i)) for i in range(4)])
        async with running_gateway(broker.bootstrap, gateway_heartbeat_seconds=0.3,
                                   gateway_history_size=2) as gateway, \
                websockets.connect(ws_url(gateway)) as ws:
            received: list[dict[str, Any]] = []
            for request in requests:
                validate(request["op"], request)
                await ws.send(orjson.dumps(request).decode())
            await produce(broker.bootstrap, [(topics.SECTOR_CAPS.name, "ai", sector(9))])
            received += await recv_until(ws, lambda m: m.get("data", {}).get("v") == 9)
            await ws.send('{"op":"nope","id":4}')
            received += await recv_until(ws, lambda m: m["type"] == "error")
            received.append(orjson.loads(await asyncio.wait_for(ws.recv(), 5)))  # the heartbeat
            return received

    received = asyncio.run(scenario())
    for message in received:
        validate(message["type"], message)
    kinds = {m["type"] for m in received}
    assert {"ack", "pong", "history", "snapshot", "update", "error", "heartbeat"} <= kinds, kinds
    assert any(m["type"] == "snapshot" and m.get("recovered") is False for m in received)
