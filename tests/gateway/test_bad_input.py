"""Bad input: each kind gets an error frame (and a close where documented) while others keep receiving."""

from __future__ import annotations

import asyncio

import pytest
import websockets

from services.common import topics
from services.gateway.protocol import Close
from tests.gateway.conftest import running_gateway, ws_url
from tests.gateway.helpers import produce, recv_until, send

SECTOR = topics.SECTOR_CAPS.name


async def expect_error(ws: websockets.ClientConnection, frame: str | bytes, code: str) -> None:
    await ws.send(frame)
    error = (await recv_until(ws, lambda m: m["type"] == "error"))[-1]
    assert error["code"] == code, error


async def expect_closed(ws: websockets.ClientConnection, code: int) -> list[str]:
    """Error codes received before the close; the close must carry ``code``."""
    errors = []
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            errors.append((await recv_until(ws, lambda m: m["type"] == "error"))[-1]["code"])
    assert closed.value.rcvd is not None and closed.value.rcvd.code == code
    return errors


def test_bad_input_is_answered_and_everyone_else_keeps_receiving(broker) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        async with running_gateway(broker.bootstrap, gateway_max_subscriptions=3, gateway_max_frame_bytes=512,
                                   gateway_rate_limit=30.0) as gateway:
            url = ws_url(gateway)
            async with websockets.connect(url) as good:
                await send(good, {"op": "subscribe", "id": 1, "channels": ["sector:*"]})
                await recv_until(good, lambda m: m["type"] == "ack")
                async with websockets.connect(url) as bad:
                    await expect_error(bad, "{not json", "bad_json")
                    await expect_error(bad, b'{"op":"ping"}', "binary_frame")
                    await expect_error(bad, '{"op":"dance","id":3}', "unknown_op")
                    await expect_error(bad, '[1,2]', "bad_request")
                    await expect_error(bad, '{"op":"subscribe","id":4,"channels":"sector:ai"}', "bad_request")
                    await expect_error(bad, '{"op":"subscribe","id":5,"channels":["weather:paris"]}',
                                       "unknown_channel")
                    await expect_error(bad, '{"op":"subscribe","id":6,"channels":["a:1","*"]}', "unknown_channel")
                    await expect_error(bad, '{"op":"subscribe","id":7,"channels":["sector:*x"]}', "unknown_channel")
                    await expect_error(
                        bad, '{"op":"subscribe","id":8,"channels":["asset:A","asset:B","asset:C","asset:D"]}',
                        "too_many_subscriptions")
                    await produce(broker.bootstrap, [(SECTOR, "ai", {"sector": "ai", "v": 1})])
                    got = await recv_until(good, lambda m: m["type"] == "update")
                    assert got[-1]["data"]["v"] == 1
                    await bad.send('{"op":"ping","pad":"' + "x" * 600 + '"}')
                    assert await expect_closed(bad, Close.LIMIT_EXCEEDED) == ["frame_too_large"]
                async with websockets.connect(url) as flood:
                    for _ in range(200):
                        try:
                            await flood.send('{"op":"ping"}')
                        except websockets.ConnectionClosed:
                            break
                    assert "rate_limited" in await expect_closed(flood, Close.LIMIT_EXCEEDED)
                await produce(broker.bootstrap, [(SECTOR, "ai", {"sector": "ai", "v": 2})])
                got = await recv_until(good, lambda m: m["type"] == "update")
                assert got[-1]["data"]["v"] == 2
            for _ in range(50):
                if not gateway.clients:
                    break
                await asyncio.sleep(0.1)
            assert gateway.clients == set()

    asyncio.run(scenario())
