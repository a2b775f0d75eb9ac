"""Shared helpers of the gateway tests: produce derived records, start a gateway, read messages."""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from websockets.asyncio.client import ClientConnection

from services.common.broker import free_port


async def produce(bootstrap: str, records: list[tuple[str, str, dict[str, Any]]]) -> list[int]:
    """Send (topic, key, value) records in order; returns their offsets."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        offsets = []
        for topic, key, value in records:
            meta = await producer.send_and_wait(topic, orjson.dumps(value), key=key.encode())
            offsets.append(meta.offset)
        return offsets
    finally:
        await producer.stop()


def gateway_env(bootstrap: str, **extra: str) -> dict[str, str]:
    env = {
        "CRYPTOPULSE_KAFKA_BOOTSTRAP": bootstrap,
        "CRYPTOPULSE_GATEWAY_PORT": str(free_port()),
        "CRYPTOPULSE_GATEWAY_METRICS_PORT": str(free_port()),
        "CRYPTOPULSE_GATEWAY_HEARTBEAT_SECONDS": "5",
    }
    env.update(extra)
    return env


def http_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_ready(port: int, proc: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.process.poll() is not None:
            raise AssertionError(f"gateway exited {proc.process.returncode}:\n{proc.output()}")
        try:
            if http_get(f"http://127.0.0.1:{port}/readyz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"gateway not ready within {timeout} s:\n{proc.output()}")


async def recv(ws: ClientConnection, timeout: float = 5) -> dict[str, Any]:
    return dict(orjson.loads(await asyncio.wait_for(ws.recv(), timeout)))


async def recv_until(ws: ClientConnection, pred: Any, timeout: float = 10) -> list[dict[str, Any]]:
    """Messages up to and including the first one for which ``pred`` is true (heartbeats skipped)."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"condition not met within {timeout} s; got {seen}")
        message = await recv(ws, left)
        if message.get("type") == "heartbeat":
            continue
        seen.append(message)
        if pred(message):
            return seen


async def send(ws: ClientConnection, message: dict[str, Any]) -> None:
    await ws.send(orjson.dumps(message).decode())
