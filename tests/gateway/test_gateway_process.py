"""The gateway as a real process on a real broker: readiness, snapshot then update, control ops."""

from __future__ import annotations

import asyncio
import signal

import websockets

from services.common import topics
from tests.gateway.helpers import gateway_env, http_get, produce, recv, recv_until, send, wait_ready


def test_snapshot_then_update_ping_unsubscribe_and_clean_stop(broker, services) -> None:  # type: ignore[no-untyped-def]
    offsets = asyncio.run(produce(broker.bootstrap, [
        (topics.SECTOR_CAPS.name, "ai", {"sector": "ai", "cap_usd": 100.0}),
        (topics.SECTOR_CAPS.name, "ai", {"sector": "ai", "cap_usd": 90.0}),
        (topics.ASSET_STATS.name, "BTC", {"asset": "BTC", "price_usd": 100000.0}),
    ]))
    env = gateway_env(broker.bootstrap)
    port = int(env["CRYPTOPULSE_GATEWAY_PORT"])
    gateway = services("gateway", env=env)
    wait_ready(port, gateway)
    assert http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200
    assert http_get(f"http://127.0.0.1:{port}/nope")[0] == 404
    assert http_get(f"http://127.0.0.1:{port}/static/../settings.py")[0] == 404

    async def scenario() -> None:
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
            await send(ws, {"op": "subscribe", "id": 7, "channels": ["sector:ai", "asset:*", "alerts:*"]})
            ack = await recv(ws)
            assert ack["type"] == "ack" and ack["id"] == 7 and ack["op"] == "subscribe"
            got = await recv_until(ws, lambda m: m["type"] == "snapshot" and m["channel"] == "asset:BTC")
            snapshots = {m["channel"]: m for m in got if m["type"] == "snapshot"}
            assert snapshots["sector:ai"]["data"] == {"sector": "ai", "cap_usd": 90.0}
            assert snapshots["sector:ai"]["seq"] == offsets[1] and snapshots["sector:ai"]["prev"] == offsets[0]
            assert snapshots["asset:BTC"]["data"]["price_usd"] == 100000.0
            new = await produce(broker.bootstrap, [
                (topics.SECTOR_CAPS.name, "ai", {"sector": "ai", "cap_usd": 80.0}),
                (topics.ALERTS.name, "rsi_cross", {"kind": "rsi_cross", "message": "RSI below 30"}),
            ])
            got = await recv_until(ws, lambda m: m["type"] == "update" and m["channel"] == "sector:ai")
            update = got[-1]
            assert update["data"] == {"sector": "ai", "cap_usd": 80.0}
            assert update["seq"] == new[0] and update["prev"] == offsets[1] and isinstance(update["ts"], int)
            if not any(m.get("channel") == "alerts:rsi_cross" for m in got):  # topics are not ordered among them
                got = await recv_until(ws, lambda m: m.get("channel") == "alerts:rsi_cross")
            alert = next(m for m in got if m.get("channel") == "alerts:rsi_cross")
            assert alert["type"] == "update" and alert["data"]["message"] == "RSI below 30"
            await send(ws, {"op": "ping", "id": "p1"})
            assert (await recv_until(ws, lambda m: m["type"] == "pong"))[-1]["id"] == "p1"
            await send(ws, {"op": "unsubscribe", "id": 8, "channels": ["sector:ai"]})
            assert (await recv_until(ws, lambda m: m["type"] == "ack"))[-1]["id"] == 8
            await produce(broker.bootstrap, [
                (topics.SECTOR_CAPS.name, "ai", {"sector": "ai", "cap_usd": 70.0}),
                (topics.ASSET_STATS.name, "BTC", {"asset": "BTC", "price_usd": 99000.0}),
            ])
            after = await recv_until(ws, lambda m: m.get("channel") == "asset:BTC" and m["type"] == "update")
            assert all(m.get("channel") != "sector:ai" for m in after)
            await send(ws, {"op": "subscribe", "id": 9, "channels": ["nope:x"]})
            err = (await recv_until(ws, lambda m: m["type"] == "error"))[-1]
            assert err["id"] == 9 and err["code"] == "unknown_channel"
            status, body = http_get(f"http://127.0.0.1:{env['CRYPTOPULSE_GATEWAY_METRICS_PORT']}/metrics")
            assert status == 200 and b"cryptopulse_gateway_connections 1.0" in body
            assert b'cryptopulse_gateway_client_errors_total{error="unknown_channel"} 1.0' in body
            gateway.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(recv_until(ws, lambda m: False, timeout=8), 8)
            except websockets.exceptions.ConnectionClosed as closed:
                assert closed.rcvd is not None and closed.rcvd.code == 4004

    asyncio.run(scenario())
    gateway.process.wait(8)
    assert gateway.process.returncode == 0, gateway.output()
