"""The gateway as a real process under abuse: history amplification by a client that never reads
(memory), the open-file limit (connections), and the project's own clients (clean closes, one-line
refusals)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import orjson
import websockets
from aiokafka import AIOKafkaProducer

from services.common import topics
from services.gateway.limits import connection_caps
from tests.conftest import ServiceProcess
from tests.gateway.helpers import gateway_env, http_get, produce, wait_ready
from tests.gateway.rawws import Closed, RawClient

MB = 2**20


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def produce_many(bootstrap: str, topic: str, records: list[tuple[str, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20, max_batch_size=2**20)
    await producer.start()
    try:
        for start in range(0, len(records), 2000):
            sent = [await producer.send(topic, value, key=key.encode()) for key, value in records[start:start + 2000]]
            await asyncio.gather(*sent)
    finally:
        await producer.stop()


def test_history_requests_from_a_client_that_never_reads_close_it_and_memory_stays_flat(
        broker, services) -> None:  # type: ignore[no-untyped-def]
    """Four ``history:1000`` requests on ``indicators:*`` (50 channels x 1000 retained ~1 KB records:
    ~50 MB per answer) from a client that never reads."""
    value = orjson.dumps({"series": "s", "pad": "x" * 1000})
    asyncio.run(produce_many(broker.bootstrap, topics.INDICATORS.name,
                             [(f"s{c}:1d", value) for _ in range(1000) for c in range(50)]))
    env = gateway_env(broker.bootstrap)
    port = int(env["CRYPTOPULSE_GATEWAY_PORT"])
    gateway = services("gateway", env=env)
    wait_ready(port, gateway, timeout=60)
    baseline = rss(gateway.process.pid)
    client = RawClient(port, rcvbuf=4096)
    for request_id in range(4):
        client.send_json({"op": "subscribe", "id": request_id, "channels": ["indicators:*"], "history": 1000})
    peak = baseline
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        peak = max(peak, rss(gateway.process.pid))
        time.sleep(0.05)
    assert peak - baseline < 150 * MB, f"RSS grew by {(peak - baseline) / MB:.0f} MB"
    errors = []
    try:
        for _ in range(100):
            message = client.recv_json()
            if message["type"] == "error":
                errors.append(message["code"])
    except Closed as closed:
        assert closed.code == 4002
    else:
        raise AssertionError("the connection was not closed")
    assert errors == ["budget_exceeded"]
    client.close()
    assert http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200


def test_connections_stop_below_the_open_file_limit_and_the_gateway_stays_healthy(
        broker, tmp_path) -> None:  # type: ignore[no-untyped-def]
    open_files = 256
    caps = connection_caps(open_files, 0)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **gateway_env(broker.bootstrap)}
    port = int(env["CRYPTOPULSE_GATEWAY_PORT"])
    gateway = ServiceProcess("gateway", ["prlimit", f"--nofile={open_files}:{open_files}", sys.executable, "-m",
                                         "services.cli", "gateway"], env, tmp_path)
    try:
        wait_ready(port, gateway)

        async def scenario() -> tuple[int, int, int]:
            opened, refused, failed = [], 0, 0
            for _ in range(open_files + 50):
                try:
                    ws = await websockets.connect(f"ws://127.0.0.1:{port}/ws", open_timeout=5)
                except (OSError, websockets.InvalidHandshake, TimeoutError):
                    failed += 1
                    continue
                try:
                    await ws.send('{"op":"ping","id":1}')
                    reply = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
                except websockets.ConnectionClosed as exc:
                    refused += exc.rcvd is not None and exc.rcvd.code == 4002
                    continue
                if reply.get("code") == "too_many_connections":
                    refused += 1
                    await ws.close()
                else:
                    opened.append(ws)
            status = (await asyncio.to_thread(http_get, f"http://127.0.0.1:{port}/healthz"))[0]
            for ws in opened:
                await ws.close()
            assert status == 200
            return len(opened), refused, failed

        opened, refused, failed = asyncio.run(scenario())
        assert opened == caps.websockets and refused == open_files + 50 - caps.websockets and failed == 0, \
            (opened, refused, failed)
        lines = gateway.output().splitlines()
        assert len(lines) < 40 and "Traceback" not in gateway.output(), gateway.output()[-3000:]
    finally:
        gateway.stop()


def test_project_clients_close_with_1000_and_report_refusals_in_one_line(
        broker, services) -> None:  # type: ignore[no-untyped-def]
    asyncio.run(produce(broker.bootstrap, [(topics.SECTOR_CAPS.name, "ai", {"sector": "ai", "cap_usd": 1.0})]))
    strict = gateway_env(broker.bootstrap, CRYPTOPULSE_GATEWAY_ALLOWED_ORIGINS="https://ok.example",
                         CRYPTOPULSE_GATEWAY_ALLOW_MISSING_ORIGIN="false")
    open_env = gateway_env(broker.bootstrap)
    strict_port, open_port = int(strict["CRYPTOPULSE_GATEWAY_PORT"]), int(open_env["CRYPTOPULSE_GATEWAY_PORT"])
    wait_ready(strict_port, services("gateway", env=strict, name="strict"))
    wait_ready(open_port, services("gateway", env=open_env, name="open"))

    for command in ("watch", "report"):
        args = ["--url", f"ws://127.0.0.1:{strict_port}/ws"] + (["sector:ai"] if command == "watch" else [])
        refused = services(command, args, name=f"{command}-refused")
        assert refused.process.wait(20) == (1 if command == "watch" else 2)
        lines = refused.output().strip().splitlines()
        assert len(lines) == 1 and "HTTP 403" in lines[0] and "origin not allowed" in lines[0], lines

    watcher = services("watch", ["--url", f"ws://127.0.0.1:{open_port}/ws", "sector:ai"], name="watch")
    deadline = time.monotonic() + 45
    while "sector:ai" not in watcher.output() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "sector:ai" in watcher.output(), watcher.output()
    watcher.process.send_signal(signal.SIGINT)
    assert watcher.process.wait(30) == 0      # a hang detector: it closes within its 2 s close timeout
    report = services("report", ["--url", f"ws://127.0.0.1:{open_port}/ws", "--timeout", "3"], name="report")
    report.process.wait(30)
    metrics_url = f"http://127.0.0.1:{open_env['CRYPTOPULSE_GATEWAY_METRICS_PORT']}/metrics"
    deadline = time.monotonic() + 10
    while True:
        body = http_get(metrics_url)[1].decode()
        series = {line.split(" ")[0]: float(line.split(" ")[1]) for line in body.splitlines()
                  if line.startswith("cryptopulse_gateway_disconnects_total{")}
        closes = sum(series.values())
        if closes >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert closes >= 2 and series['cryptopulse_gateway_disconnects_total{code="1000"}'] == closes, {k: v for k, v in series.items() if v}
