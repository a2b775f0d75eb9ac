"""End-to-end benchmark of the 2025-01-27 scenario through the whole stack (processes, embedded broker).

    python -m bench.scenario_e2e [--densities 0.02,0.1,0.25] [--latency-density 0.1] [--latency-seconds 45]

1. Throughput: for each density, the full week at ``--speed max``: frames in, the ingestor's wall
   time and frames/s, and the wall time until every family has reached its final state through the
   gateway, as ``cryptopulse report`` checks it (total cap at 2025-01-27 23:59:59.9, every figure
   and every expected alert); printed as a ratio to the ingestor-alone time of the same run. The
   children run as under ``cryptopulse up`` (embedded-broker settings: short group timeouts, no
   idempotent producer).
2. Latency: a paced replay whose input rate is a fraction of the measured maximum; for every
   ``asset:*`` update the client receives, latency = arrival - the wall time at which the pacer
   released the frames of that event time (the first frame's release is observed on the ingestor's
   frames counter). Printed as p50/p99 side by side with the rate.
Numbers are noisy on a shared 2-core machine; compare ratios within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import websockets

from services.common.broker import EmbeddedBroker, free_port
from services.common.kafka import create_topics
from services.ingestor.instruments import load_instruments
from services.scenario.figures import check_signals, evaluate_live, live_values
from services.scenario.paths import END_MS
from services.scenario.report import collect
from services.scenario.source import open_scenario

FINAL_TS = END_MS - 60_000 + 59_900
WARMUP_S = 10.0        # updates of the first seconds (processor seeding its history) are not counted
SUMMARY = re.compile(r"source ended: (\d+) frames .* in ([\d.]+) s")


class Stack:
    """Broker, processor, gateway and a scenario ingestor as child processes."""

    def __init__(self, density: float, speed: str, log_dir: Path) -> None:
        self.broker = EmbeddedBroker(port=free_port()).start()
        asyncio.run(create_topics(self.broker.bootstrap))
        self.gateway_port = free_port()
        self.ingestor_metrics = free_port()
        self.env = {k: v for k, v in os.environ.items() if k != "CRYPTOPULSE_KAFKA_BOOTSTRAP"}
        self.env.update({"PYTHONUNBUFFERED": "1", "CRYPTOPULSE_BROKER_HOST": "127.0.0.1",   # as `up` runs them
                         "CRYPTOPULSE_BROKER_PORT": str(self.broker.port),
                         "CRYPTOPULSE_SCENARIO_DENSITY": str(density), "CRYPTOPULSE_LOG_LEVEL": "WARNING"})
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._start("processor", "process", "--metrics-port", str(free_port()))
        self._start("gateway", "gateway", "--port", str(self.gateway_port), "--metrics-port", str(free_port()))
        self.speed = speed

    def _start(self, name: str, *args: str) -> None:
        log = (self.log_dir / f"{name}.log").open("wb")
        self.procs[name] = subprocess.Popen([sys.executable, "-m", "services.cli", *args], env=self.env,
                                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def start_ingestor(self) -> float:
        self.env["CRYPTOPULSE_LOG_LEVEL"] = "INFO"
        self._start("ingestor", "ingest", "--source", "scenario", "--speed", self.speed, "--hold",
                    "--metrics-port", str(self.ingestor_metrics))
        return time.time()

    def ingestor_summary(self) -> tuple[int, float] | None:
        match = SUMMARY.search((self.log_dir / "ingestor.log").read_text(errors="replace"))
        return (int(match.group(1)), float(match.group(2))) if match else None

    def frames_counted(self) -> float:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ingestor_metrics}/metrics", timeout=1) as r:
                text = r.read().decode()
        except OSError:
            return 0.0
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("cryptopulse_ingestor_frames_total{"))

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds (user + system) each child has used so far."""
        tick = os.sysconf("SC_CLK_TCK")
        out = {}
        children = dict(self.procs)
        if self.broker.process is not None:
            children["broker"] = self.broker.process
        for name, proc in children.items():
            try:
                fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            out[name] = (int(fields[11]) + int(fields[12])) / tick
        return out

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.gateway_port}/ws"

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.broker.stop()


def final_state(records: dict[str, list[dict[str, Any]]], alerts: list[dict[str, Any]]) -> bool:
    """What ``cryptopulse report`` passes on: the total cap at the week's last event time, every
    figure (sectors, assets, liquidations, the daily total-cap candle's SMA/RSI) and every alert."""
    total = records.get("sector:total") or [{}]
    if total[-1].get("ts") != FINAL_TS:
        return False
    values = live_values(records)
    return all(v.ok for v in evaluate_live(values)) and all(s.ok for s in check_signals(values, alerts))


async def _until_final(url: str, timeout: float) -> float | None:
    """Wall time at which a report client first sees the final state, or None (polled every 1 s;
    the time stamp is taken when the passing collection started)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        asked = time.time()
        try:
            records, alerts = await collect(url, timeout=15, quiet=0.5)
        except OSError:
            records, alerts = {}, []
        if final_state(records, alerts):
            return asked
        await asyncio.sleep(max(0.0, asked + 1.0 - time.time()))
    return None


def throughput(density: float, timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(density, "max", Path(tmp))
        try:
            time.sleep(8)      # processor joins its group, gateway listens
            started = stack.start_ingestor()
            done = asyncio.run(_until_final(stack.url, timeout))
            summary = stack.ingestor_summary()
            cpu = stack.cpu_seconds()
        finally:
            stack.stop()
    frames, ingest_s = summary if summary else (0, float("nan"))
    e2e_s = (done - started) if done else float("nan")
    return {"density": density, "frames": frames, "ingest_s": ingest_s, "ingest_fps": frames / ingest_s,
            "e2e_s": e2e_s, "e2e_fps": frames / e2e_s, "ratio": e2e_s / ingest_s, "cpu": cpu}


async def _latencies(stack: Stack, speed: float, first_ts: int,
                     seconds: float) -> tuple[list[float], list[float], int]:
    out: list[float] = []
    gateway_leg: list[float] = []
    origin: float | None = None
    async with websockets.connect(stack.url, open_timeout=10, max_size=None) as ws:
        await ws.send(orjson.dumps({"op": "subscribe", "id": 1, "channels": ["asset:*"]}).decode())
        stack.start_ingestor()
        while origin is None:
            if stack.frames_counted() > 0:
                origin = time.time()
            await asyncio.sleep(0.01)
        end = origin + seconds
        while time.time() < end:
            try:
                raw = await asyncio.wait_for(ws.recv(), end - time.time())
            except TimeoutError:
                break
            arrived = time.time()
            message = orjson.loads(raw)
            data = message.get("data") or {}
            if message.get("type") == "update" and isinstance(data.get("ts"), int) and arrived > origin + WARMUP_S:
                released = origin + (data["ts"] - first_ts) / 1000.0 / speed
                out.append(arrived - released)
                if isinstance(data.get("ts_emit"), int):
                    gateway_leg.append(arrived - data["ts_emit"] / 1000.0)
    return out, gateway_leg, int(stack.frames_counted())


def latency(density: float, speed: float, seconds: float) -> dict[str, Any]:
    first_ts = next(iter(open_scenario(instruments=load_instruments, density=density).frames())).ts_recv
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(density, str(speed), Path(tmp))
        try:
            time.sleep(8)
            values, gateway_leg, frames = asyncio.run(_latencies(stack, speed, first_ts, seconds))
        finally:
            stack.stop()
    return {"density": density, "speed": speed, "frames": frames, "fps": frames / seconds, "updates": len(values),
            "p50_ms": _quantile(values, 0.5), "p99_ms": _quantile(values, 0.99),
            "mean_ms": statistics.fmean(values) * 1000 if values else 0.0,
            "gw_p50_ms": _quantile(gateway_leg, 0.5), "gw_p99_ms": _quantile(gateway_leg, 0.99)}


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--densities", default="0.1,1.0")
    parser.add_argument("--timeout", type=float, default=600.0, help="per full-week run")
    parser.add_argument("--latency-density", type=float, default=0.1)
    parser.add_argument("--latency-load", type=float, default=0.3, help="input rate as a fraction of the max")
    parser.add_argument("--latency-seconds", type=float, default=45.0)
    parser.add_argument("--latency-speed", type=float, help="skip the throughput runs and pace at this speed")
    args = parser.parse_args()
    if args.latency_speed:
        _print_latency(latency(args.latency_density, args.latency_speed, args.latency_seconds), None, "")
        return
    rows = [throughput(float(d), args.timeout) for d in args.densities.split(",")]
    print(f"{'density':>8} {'frames':>9} {'ingest s':>9} {'ingest f/s':>11} {'final s':>8} {'final f/s':>9} "
          f"{'final/ingest':>12}")
    for r in rows:
        print(f"{r['density']:>8g} {r['frames']:>9} {r['ingest_s']:>9.1f} {r['ingest_fps']:>11.0f} "
              f"{r['e2e_s']:>8.1f} {r['e2e_fps']:>9.0f} {r['ratio']:>11.1f}x   (target <= 1.5x)")
        per_frame = {name: f"{cpu / r['frames'] * 1e6:.0f}" for name, cpu in r["cpu"].items()} if r["frames"] else {}
        print(f"{'':>8} CPU s to the final state: " + ", ".join(f"{n} {c:.1f}" for n, c in r["cpu"].items())
              + f"; µs per frame: {per_frame}")
    measured = [r for r in rows if r["e2e_fps"] == r["e2e_fps"]] or [r for r in rows if r["frames"]]
    if not measured:
        return
    rate_key = "e2e_fps" if measured[0]["e2e_fps"] == measured[0]["e2e_fps"] else "ingest_fps"
    best = max(measured, key=lambda r: r[rate_key])
    week_s = 8 * 86_400
    frames_per_week = best["frames"] * args.latency_density / best["density"]
    speed = max(1.0, round(args.latency_load * best[rate_key] * week_s / frames_per_week))
    _print_latency(latency(args.latency_density, speed, args.latency_seconds), best[rate_key], rate_key)


def _print_latency(lat: dict[str, Any], max_rate: float | None, rate_key: str) -> None:
    share = f" = {lat['fps'] / max_rate:.2f} of the max {rate_key} rate" if max_rate else ""
    print(f"\nlatency frame release -> websocket delivery, density {lat['density']:g}, speed {lat['speed']:g}x "
          f"({lat['fps']:.0f} frames/s{share})")
    print(f"  updates {lat['updates']}, p50 {lat['p50_ms']:.0f} ms, p99 {lat['p99_ms']:.0f} ms, "
          f"mean {lat['mean_ms']:.0f} ms (after a {WARMUP_S:g} s warm-up; includes the processor's conflation interval)")
    print(f"  of which processor emit -> websocket delivery: p50 {lat['gw_p50_ms']:.0f} ms, "
          f"p99 {lat['gw_p99_ms']:.0f} ms")


if __name__ == "__main__":
    main()
