"""In-process gateway on the real embedded broker (the process-level tests use the `services` fixture)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from services.common.broker import free_port
from services.common.settings import KafkaSettings, load
from services.gateway.server import Gateway
from services.gateway.settings import GatewaySettings


@asynccontextmanager
async def running_gateway(bootstrap: str, **overrides: Any) -> AsyncIterator[Gateway]:
    """A Gateway serving on a free port inside this event loop until the block ends."""
    settings = load(GatewaySettings, environ={}, gateway_port=free_port(), **overrides)
    kafka = load(KafkaSettings, environ={}, kafka_bootstrap=bootstrap, kafka_compression="none")  # Tansu
    gateway = Gateway(settings, kafka)
    stop = asyncio.Event()
    task = asyncio.create_task(gateway.run(stop))
    await asyncio.wait_for(gateway.ready.wait(), 15)
    try:
        yield gateway
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def ws_url(gateway: Gateway) -> str:
    return f"ws://127.0.0.1:{gateway.settings.gateway_port}/ws"
