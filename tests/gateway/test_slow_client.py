"""One client that stops reading while 100 others keep receiving with bounded latency."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import orjson
import websockets
from aiokafka import AIOKafkaProducer

from services.common import topics
from services.gateway import metrics
from tests.gateway.conftest import running_gateway, ws_url
from tests.gateway.helpers import recv_until, send

ALERTS = topics.ALERTS.name
CLIENTS = 100
SMALL = 30


def tiny_receive_buffer_socket(port: int) -> socket.socket:
    """A client socket with a small kernel receive buffer, so a non-reading client backs up fast."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


async def collect_small(ws: websockets.ClientConnection) -> list[float]:
    """Latency of each small alert, in order; fails on a gap or duplicate."""
    latencies = []
    expected = 0
    while expected < SMALL:
        message = (await recv_until(ws, lambda m: m["type"] == "update", timeout=30))[-1]
        assert message["data"]["n"] == expected, message
        latencies.append(time.time() - message["data"]["t"])
        expected += 1
    return latencies


def test_slow_reader_is_disconnected_and_others_keep_up(broker) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> list[float]:
        slow_before = metrics.SLOW_DISCONNECTS._value.get()
        async with running_gateway(broker.bootstrap, gateway_queue_size=20) as gateway:
            url = ws_url(gateway)
            good = [await websockets.connect(url) for _ in range(CLIENTS)]
            for ws in good:
                await send(ws, {"op": "subscribe", "id": 1, "channels": ["alerts:small"]})
                await recv_until(ws, lambda m: m["type"] == "ack")
            sock = tiny_receive_buffer_socket(gateway.settings.gateway_port)
            slow = await websockets.connect(url, sock=sock, max_queue=1)
            await send(slow, {"op": "subscribe", "id": 1, "channels": ["alerts:*"]})
            readers = [asyncio.create_task(collect_small(ws)) for ws in good]
            pad = "x" * 65536
            records: list[tuple[str, str, dict[str, Any]]] = []
            for n in range(SMALL):
                records += [(ALERTS, "big", {"kind": "big", "pad": pad}) for _ in range(10)]
                records.append((ALERTS, "small", {"kind": "small", "n": n, "t": time.time()}))
            await produce_timed(broker.bootstrap, records)
            latencies = [x for result in await asyncio.gather(*readers) for x in result]
            deadline = time.monotonic() + 10
            while metrics.SLOW_DISCONNECTS._value.get() == slow_before and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert metrics.SLOW_DISCONNECTS._value.get() == slow_before + 1
            assert len(gateway.clients) == CLIENTS
            for ws in good:
                await ws.close()
            slow.transport.abort()
            return latencies

    latencies = asyncio.run(scenario())
    assert len(latencies) == CLIENTS * SMALL
    assert max(latencies) < 3.0, max(latencies)


async def produce_timed(bootstrap: str, records: list[tuple[str, str, dict[str, Any]]]) -> None:
    """Produce in order, stamping each small alert with its send time just before it is sent."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=2**20)
    await producer.start()
    try:
        for topic, key, value in records:
            if "t" in value:
                value["t"] = time.time()
            await producer.send_and_wait(topic, orjson.dumps(value), key=key.encode())
    finally:
        await producer.stop()
