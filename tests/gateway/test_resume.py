"""Resume after a forced disconnect: a contiguous replay (no gap, no duplicate) or recovered:false."""

from __future__ import annotations

import asyncio

import websockets

from services.common import topics
from tests.gateway.conftest import running_gateway, ws_url
from tests.gateway.helpers import produce, recv_until, send

SECTOR = topics.SECTOR_CAPS.name
ALERTS = topics.ALERTS.name


def test_resume_replays_missed_updates_without_gap_or_duplicate(broker) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        await produce(broker.bootstrap, [(ALERTS, "cascade", {"kind": "cascade", "n": 0})])
        async with running_gateway(broker.bootstrap, gateway_history_size=50) as gateway:
            seen: list[dict] = []
            ws = await websockets.connect(ws_url(gateway))
            await send(ws, {"op": "subscribe", "id": 1, "channels": ["alerts:*"]})
            seen += [m for m in await recv_until(ws, lambda m: m["type"] == "snapshot") if m["type"] != "ack"]
            await produce(broker.bootstrap, [(ALERTS, "cascade", {"kind": "cascade", "n": i}) for i in (1, 2)])
            seen += await recv_until(ws, lambda m: m["data"]["n"] == 2)
            ws.transport.abort()  # forced disconnect, no close handshake
            await produce(broker.bootstrap, [(ALERTS, "cascade", {"kind": "cascade", "n": i}) for i in range(3, 8)])
            async with websockets.connect(ws_url(gateway)) as again:
                await send(again, {"op": "subscribe", "id": 2, "channels": ["alerts:*"],
                                   "since": {"alerts:cascade": seen[-1]["seq"]}})
                replay = await recv_until(again, lambda m: m.get("data", {}).get("n") == 7)
            data = [m for m in seen + replay if m["type"] in ("snapshot", "update")]
            assert [m["data"]["n"] for m in data] == list(range(8))
            for before, after in zip(data, data[1:], strict=False):
                assert after["prev"] == before["seq"], (before, after)
            assert all(m["type"] == "update" for m in replay if m["type"] != "ack")

    asyncio.run(scenario())


def test_resume_beyond_history_sends_fresh_snapshot_marked_not_recovered(broker) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        offsets = await produce(broker.bootstrap, [(SECTOR, "ai", {"sector": "ai", "v": i}) for i in range(10)])
        async with running_gateway(broker.bootstrap, gateway_history_size=3) as gateway, \
                websockets.connect(ws_url(gateway)) as ws:
                await send(ws, {"op": "subscribe", "id": 1, "channels": ["sector:ai"],
                                "since": {"sector:ai": offsets[2]}})
                got = await recv_until(ws, lambda m: m["type"] in ("snapshot", "update"))
                assert got[-1]["type"] == "snapshot" and got[-1]["recovered"] is False
                assert got[-1]["data"] == {"sector": "ai", "v": 9} and got[-1]["seq"] == offsets[9]
                await send(ws, {"op": "subscribe", "id": 2, "channels": ["sector:x"], "history": 5})
                await send(ws, {"op": "unsubscribe", "id": 3, "channels": ["sector:ai"]})
                await send(ws, {"op": "subscribe", "id": 4, "channels": ["sector:ai"], "history": 5})
                got = await recv_until(ws, lambda m: m["type"] == "snapshot")
                history = [m for m in got if m["type"] == "history"]
                assert [m["data"]["v"] for m in history] == [7, 8]  # history keeps 3 records: 2 past + latest
                assert got[-1]["data"]["v"] == 9 and "recovered" not in got[-1]
                await send(ws, {"op": "subscribe", "id": 5, "channels": ["sector:ai"],
                                "since": {"sector:ai": offsets[7]}})
                got = await recv_until(ws, lambda m: m["type"] == "update")
                assert [m["data"]["v"] for m in got if m["type"] == "update"] == [9]  # state: conflated to latest

    asyncio.run(scenario())
