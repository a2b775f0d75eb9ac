"""`cryptopulse watch` prints readable lines (and raw JSON with --json) from a running gateway."""

from __future__ import annotations

import asyncio
import time

import orjson

from services.common import topics
from tests.gateway.helpers import gateway_env, produce, wait_ready


def wait_for_text(proc, text: str, timeout: float = 15) -> str:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in proc.output():
            return str(proc.output())
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not printed:\n{proc.output()}")


def test_watch_prints_updates(broker, services) -> None:  # type: ignore[no-untyped-def]
    asyncio.run(produce(broker.bootstrap, [(topics.SECTOR_CAPS.name, "ai", {"sector": "ai", "cap_usd": 1.25e11})]))
    env = gateway_env(broker.bootstrap)
    port = env["CRYPTOPULSE_GATEWAY_PORT"]
    gateway = services("gateway", env=env)
    wait_ready(int(port), gateway)
    url = f"ws://127.0.0.1:{port}/ws"
    readable = services("watch", ["--url", url, "sector:*"], name="watch")
    raw = services("watch", ["--url", url, "--json", "sector:ai"], name="watch-json")
    out = wait_for_text(readable, "cap_usd=125,000,000,000")
    assert "snapshot" in out and "sector:ai" in out
    wait_for_text(raw, '"type":"snapshot"')  # both watchers hold the snapshot before the update is produced
    asyncio.run(produce(broker.bootstrap, [(topics.SECTOR_CAPS.name, "ai", {"sector": "ai", "cap_usd": 2.0})]))
    wait_for_text(readable, "cap_usd=2")
    line = next(ln for ln in wait_for_text(raw, '"cap_usd":2.0').splitlines() if '"cap_usd":2.0' in ln)
    assert orjson.loads(line)["type"] == "update"
