"""The README's Python client example, run as written against a real gateway process."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time

from services.common import topics
from tests.conftest import REPO
from tests.dashboard import feed
from tests.gateway.helpers import gateway_env, produce, wait_ready


def readme_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    [example] = [b for b in blocks if "GatewayClient" in b]
    return example


def test_the_readme_example_prints_live_values(broker, services) -> None:  # type: ignore[no-untyped-def]
    records = feed.sector_records() + [r for r in feed.liquidation_records() if r[1] == "24h:all"]
    asyncio.run(produce(broker.bootstrap, records))
    env = gateway_env(broker.bootstrap)
    port = int(env["CRYPTOPULSE_GATEWAY_PORT"])
    wait_ready(port, services("gateway", env=env))
    code = readme_example().replace("ws://127.0.0.1:8765/ws", f"ws://127.0.0.1:{port}/ws")
    assert f"127.0.0.1:{port}" in code
    example = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, cwd=REPO)
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 20
        while len(lines) < 2 and time.monotonic() < deadline:
            line = example.stdout.readline() if example.stdout else ""
            if not line:
                break
            lines.append(line.strip())
    finally:
        example.kill()
        example.wait()
    total = next(v for t, k, v in records if t == topics.SECTOR_CAPS.name and k == "total")
    liq = next(v for t, _, v in records if t == topics.LIQUIDATION_TOTALS.name)
    assert sorted(lines) == sorted([f"sector:total 0 {total['cap_usd']}", f"liquidations:24h:all 0 {liq['total_usd']}"]), lines
