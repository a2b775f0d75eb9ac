"""Gateway fan-out benchmark: one gateway process, load generators in separate processes.

    python -m bench.gateway_fanout [--connections 1000] [--updates 200] [--rate 50] [--slow-pct 5]

Part 1, side by side in one run: the fan-out loop of the gateway (envelope and websocket frame
built once, the same bytes written to every connection) vs. a naive per-client ``json.dumps`` + ``send``, over real
websocket connections, timing the server side.
Part 2: a real gateway process on the embedded broker; N connections subscribed to ``sector:*``;
updates produced to Kafka carry their send time, so latency = Kafka produce -> client receive.
Prints deliveries/s, p50/p99, gateway RSS per idle connection, then the same run with a share of
clients that never read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import signal
import subprocess
import sys
import time
import urllib.request
from typing import Any

import orjson
import websockets
from aiokafka import AIOKafkaProducer
from websockets.asyncio.server import ServerConnection, serve

from services.common import topics
from services.common.broker import EmbeddedBroker, free_port
from services.common.kafka import create_topics
from services.gateway import protocol

LOADERS = 2


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# ---------- load generator (child processes) ----------
async def _load(url: str, count: int, slow: int, ready: Any, results: Any, duration: float) -> None:
    latencies: list[float] = []
    conns = []
    for index in range(count):
        ws = await websockets.connect(url, max_queue=4 if index < slow else 64, open_timeout=30)
        conns.append(ws)
    ready.put(count)
    await asyncio.sleep(0.5)

    async def reader(ws: websockets.ClientConnection) -> None:
        await ws.send('{"op":"subscribe","id":1,"channels":["sector:*"]}')
        async for frame in ws:
            now = time.time()
            if frame[:18] == '{"type":"update","':
                latencies.append(now - orjson.loads(frame)["data"]["t"])

    async def idle(ws: websockets.ClientConnection) -> None:
        await ws.send('{"op":"subscribe","id":1,"channels":["sector:*"]}')
        await asyncio.sleep(duration * 3)

    tasks = [asyncio.create_task(idle(ws) if i < slow else reader(ws)) for i, ws in enumerate(conns)]
    await asyncio.sleep(duration)
    for task in tasks:
        task.cancel()
    results.put(latencies)
    for ws in conns:
        ws.transport.abort()


def loader(url: str, count: int, slow: int, ready: Any, results: Any, duration: float) -> None:
    raise_fd_limit()
    asyncio.run(_load(url, count, slow, ready, results, duration))


# ---------- part 1: encode-once vs naive, same server, same clients ----------
async def _sink(url: str, count: int, ready: Any) -> None:
    conns = [await websockets.connect(url, max_queue=None) for _ in range(count)]
    ready.put(count)
    await asyncio.gather(*(_drain(ws) for ws in conns), return_exceptions=True)


async def _drain(ws: websockets.ClientConnection) -> None:
    async for _ in ws:
        pass


def sink(url: str, count: int, ready: Any) -> None:
    raise_fd_limit()
    asyncio.run(_sink(url, count, ready))


async def compare_encoding(clients: int, updates: int) -> None:
    conns: list[ServerConnection] = []

    async def handler(ws: ServerConnection) -> None:
        conns.append(ws)
        await ws.wait_closed()

    port = free_port()
    value = orjson.dumps({"sector": "ai", "name": "AI", "cap_usd": 1.234e11, "change_24h_pct": -15.2,
                          "volume_24h_usd": 2.1e10, "members": 40, "ts": 1737936000000,
                          "ts_emit": 1737936000100, "losers": ["FET", "RNDR", "TAO"]})
    async with serve(handler, "127.0.0.1", port, compression=None, max_queue=None):
        ctx = multiprocessing.get_context("spawn")
        ready = ctx.Queue()
        procs = [ctx.Process(target=sink, args=(f"ws://127.0.0.1:{port}", clients // LOADERS, ready))
                 for _ in range(LOADERS)]
        for proc in procs:
            proc.start()
        for _ in procs:
            await asyncio.to_thread(ready.get, True, 60)
        while len(conns) < clients // LOADERS * LOADERS:
            await asyncio.sleep(0.05)

        async def drain_all() -> None:
            await asyncio.gather(*(ws.send(b"", text=True) for ws in conns))

        def once(seq: int) -> float:
            start = time.process_time()
            data = protocol.envelope("update", "sector:ai", seq, seq - 1, value, protocol.now_ms())
            frame = protocol.text_frame(data)  # the gateway's fan-out: one frame, one write per client
            for ws in conns:
                ws.transport.write(frame)
            return time.process_time() - start

        decoded = orjson.loads(value)

        def naive(seq: int) -> float:
            start = time.process_time()
            for ws in conns:
                text = json.dumps({"type": "update", "channel": "sector:ai", "seq": seq, "prev": seq - 1,
                                   "ts": protocol.now_ms(), "data": decoded})
                ws.protocol.send_text(text.encode())
                ws.send_data()
            return time.process_time() - start

        timings: dict[str, float] = {"encode-once": 0.0, "naive": 0.0}
        for seq in range(1, updates + 1):
            timings["encode-once"] += once(seq)
            await drain_all()
            timings["naive"] += naive(seq)
            await drain_all()
        deliveries = updates * len(conns)
        for name, cpu in timings.items():
            print(f"  {name:12} {deliveries / cpu:12,.0f} deliveries/s of server CPU "
                  f"({cpu * 1e6 / deliveries:.1f} us each)")
        print(f"  ratio encode-once / naive: {timings['naive'] / timings['encode-once']:.2f}x")
        for ws in conns:
            ws.transport.abort()
        for proc in procs:
            proc.terminate()
            proc.join(5)


# ---------- part 2: real gateway process ----------
def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def gateway_ready(port: int, timeout: float = 30) -> bool:
    """Whether the gateway on ``port`` answers /readyz with 200 within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as resp:
                if resp.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def wait_ready(port: int, timeout: float = 30) -> None:
    if not gateway_ready(port, timeout):
        raise SystemExit("gateway not ready")


async def produce_updates(bootstrap: str, updates: int, rate: float) -> float:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await producer.start()
    start = time.monotonic()
    try:
        for n in range(updates):
            key = f"s{n % 8}"
            value = {"sector": key, "cap_usd": 1e11 + n, "t": time.time()}
            await producer.send_and_wait(topics.SECTOR_CAPS.name, orjson.dumps(value), key=key.encode())
            await asyncio.sleep(max(0.0, start + (n + 1) / rate - time.monotonic()))
    finally:
        await producer.stop()
    return time.monotonic() - start


def run_gateway_load(bootstrap: str, connections: int, updates: int, rate: float, slow_pct: float) -> dict[str, float]:
    port, metrics_port = free_port(), free_port()
    env = {**os.environ, "CRYPTOPULSE_KAFKA_BOOTSTRAP": bootstrap, "CRYPTOPULSE_KAFKA_COMPRESSION": "none",
           "CRYPTOPULSE_GATEWAY_PORT": str(port),
           "CRYPTOPULSE_GATEWAY_METRICS_PORT": str(metrics_port), "CRYPTOPULSE_LOG_LEVEL": "WARNING",
           "CRYPTOPULSE_GATEWAY_MAX_CONNECTIONS": str(connections * 2), "CRYPTOPULSE_GATEWAY_QUEUE_SIZE": "100"}
    gateway = subprocess.Popen([sys.executable, "-m", "services.cli", "gateway"], env=env)
    try:
        wait_ready(port)
        base_rss = rss_kb(gateway.pid)
        ctx = multiprocessing.get_context("spawn")
        ready, results = ctx.Queue(), ctx.Queue()
        per = connections // LOADERS
        slow = int(per * slow_pct / 100)
        duration = updates / rate + 4
        procs = [ctx.Process(target=loader, args=(f"ws://127.0.0.1:{port}/ws", per, slow, ready, results, duration))
                 for _ in range(LOADERS)]
        for proc in procs:
            proc.start()
        for _ in procs:
            ready.get(timeout=120)
        time.sleep(0.3)
        idle_rss = rss_kb(gateway.pid)
        cpu_before = _cpu_seconds(gateway.pid)
        elapsed = asyncio.run(produce_updates(bootstrap, updates, rate))
        latencies = sorted(x for _ in procs for x in results.get(timeout=duration + 60))
        cpu = _cpu_seconds(gateway.pid) - cpu_before
        for proc in procs:
            proc.join(10)
        if not latencies:
            raise SystemExit("no deliveries")
        return {
            "deliveries": len(latencies), "expected": updates * (per - slow) * LOADERS,
            "per_s": len(latencies) / elapsed, "per_cpu_s": len(latencies) / max(cpu, 1e-9),
            "p50_ms": latencies[len(latencies) // 2] * 1000, "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
            "kb_per_conn": (idle_rss - base_rss) / max(1, per * LOADERS),
        }
    finally:
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(15)


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def show(label: str, r: dict[str, float]) -> None:
    print(f"  {label:22} deliveries {r['deliveries']:,.0f}/{r['expected']:,.0f}  {r['per_s']:,.0f}/s wall  "
          f"{r['per_cpu_s']:,.0f}/s per gateway CPU-second  p50 {r['p50_ms']:.1f} ms  p99 {r['p99_ms']:.1f} ms  "
          f"RSS {r['kb_per_conn']:.1f} KB/idle connection")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--updates", type=int, default=200)
    parser.add_argument("--rate", type=float, default=50.0, help="updates per second into Kafka")
    parser.add_argument("--slow-pct", type=float, default=5.0)
    parser.add_argument("--compare-clients", type=int, default=500)
    args = parser.parse_args()
    raise_fd_limit()
    print(f"1. fan-out encoding, {args.compare_clients} real connections, 200 updates, side by side:")
    asyncio.run(compare_encoding(args.compare_clients, 200))
    broker = EmbeddedBroker(port=free_port()).start()
    try:
        asyncio.run(create_topics(broker.bootstrap))
        print(f"2. gateway process, {args.connections} connections, {args.updates} updates at {args.rate}/s:")
        normal = run_gateway_load(broker.bootstrap, args.connections, args.updates, args.rate, 0)
        show("all reading", normal)
        slow = run_gateway_load(broker.bootstrap, args.connections, args.updates, args.rate, args.slow_pct)
        show(f"{args.slow_pct:g}% not reading", slow)
        print(f"  p99 ratio with/without non-readers: {slow['p99_ms'] / normal['p99_ms']:.2f}x")
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
