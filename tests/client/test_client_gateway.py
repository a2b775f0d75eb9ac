"""The public client against real gateway processes: resume across a gateway restart (no gap, no
duplicate), and a reset stream (the embedded broker restarted empty) told apart by its epoch."""

from __future__ import annotations

import asyncio
import time
from contextlib import aclosing
from typing import Any

import orjson
import websockets

from services.client import Backoff, GatewayClient, Record, Snapshot, Update
from services.common import topics
from services.common.broker import EmbeddedBroker
from services.common.kafka import create_topics
from tests.gateway.helpers import gateway_env, produce, wait_ready

ALERTS = topics.ALERTS.name


def alerts(numbers: range) -> list[tuple[str, str, dict[str, Any]]]:
    return [(ALERTS, "drawdown", {"kind": "drawdown", "n": n}) for n in numbers]


async def records_until(stream: Any, last_n: int, timeout: float = 30) -> list[Record]:
    got: list[Record] = []
    deadline = time.monotonic() + timeout
    while True:
        message = await asyncio.wait_for(anext(stream), max(0.1, deadline - time.monotonic()))
        if isinstance(message, Record):
            got.append(message)
            if message.data.get("n") == last_n:
                return got


def test_resume_across_a_gateway_restart_and_a_reset_stream(broker, services) -> None:  # type: ignore[no-untyped-def]
    asyncio.run(produce(broker.bootstrap, alerts(range(0, 3))))
    env = gateway_env(broker.bootstrap)
    port = int(env["CRYPTOPULSE_GATEWAY_PORT"])
    first = services("gateway", env=env, name="gateway1")
    wait_ready(port, first)

    def restart_gateway() -> None:
        first.stop()
        asyncio.run(produce(broker.bootstrap, alerts(range(5, 9))))  # while no gateway runs
        wait_ready(port, services("gateway", env=env, name="gateway2"))

    async def scenario() -> tuple[list[Record], list[Record], GatewayClient, EmbeddedBroker]:
        client = GatewayClient(f"ws://127.0.0.1:{port}/ws", ["alerts:drawdown"], backoff=Backoff(0.1, 1.0))
        async with aclosing(client.messages()) as stream:
            seen = await records_until(stream, 2)
            await produce(broker.bootstrap, alerts(range(3, 5)))
            seen += await records_until(stream, 4)
            await asyncio.to_thread(restart_gateway)
            seen += await records_until(stream, 8)
            broker.stop()  # the embedded broker restarts empty on its port (started by this thread, which it
            fresh = EmbeddedBroker(port=broker.port).start()  # dies with: not in a worker thread)
            await create_topics(fresh.bootstrap)
            await produce(fresh.bootstrap, alerts(range(100, 102)))
            after_reset = await records_until(stream, 101, timeout=60)
        return seen, after_reset, client, fresh

    async def resume(url: str, since: dict[str, Any]) -> dict[str, Any]:
        async with websockets.connect(url) as ws:
            await ws.send(orjson.dumps({"op": "subscribe", "id": 1, "channels": ["alerts:drawdown"],
                                        "since": since}).decode())
            return next(m for m in [orjson.loads(await ws.recv()) for _ in range(2)] if m["type"] != "ack")

    seen, after_reset, client, fresh = asyncio.run(scenario())
    try:
        # a seq of the old stream is not resumed in the new one, though that seq exists there
        stale = asyncio.run(resume(f"ws://127.0.0.1:{port}/ws",
                                   {"alerts:drawdown": {"seq": 0, "epoch": seen[-1].epoch}}))
        assert stale["type"] == "snapshot" and stale["recovered"] is False and stale["data"]["n"] == 101
        current = asyncio.run(resume(f"ws://127.0.0.1:{port}/ws",
                                     {"alerts:drawdown": {"seq": 0, "epoch": after_reset[0].epoch}}))
        assert current["type"] == "update" and current["data"]["n"] == 101
        # another gateway instance, started after the reset, names the same stream with the same epoch
        other = gateway_env(fresh.bootstrap)
        wait_ready(int(other["CRYPTOPULSE_GATEWAY_PORT"]), services("gateway", env=other, name="gateway3"))
        again = asyncio.run(resume(f"ws://127.0.0.1:{other['CRYPTOPULSE_GATEWAY_PORT']}/ws",
                                   {"alerts:drawdown": {"seq": 0, "epoch": after_reset[0].epoch}}))
        assert again["type"] == "update" and again["epoch"] == after_reset[0].epoch
        assert [r.data["n"] for r in seen] == list(range(2, 9))
        assert isinstance(seen[0], Snapshot) and all(isinstance(r, Update) for r in seen[1:])
        assert client.connects == 2 and not any(r.gap or r.reset for r in seen)
        for before, after in zip(seen, seen[1:], strict=False):
            assert after.prev == before.seq and after.epoch == before.epoch
        assert [r.data["n"] for r in after_reset] == [100, 101]
        assert after_reset[0].reset and after_reset[0].epoch != seen[-1].epoch and after_reset[0].seq == 0
        assert after_reset[1].epoch == after_reset[0].epoch and not after_reset[1].reset
    finally:
        fresh.stop()
