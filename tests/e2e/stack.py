"""Helpers for end-to-end tests: run `cryptopulse up` as a real process and talk to its gateway."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import websockets

from services.common.broker import free_port

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "services" / "ingestor" / "data" / "sample-binance-usdm.jsonl"


def stack_env(**extra: str) -> dict[str, str]:
    """Environment for a stack whose every port is a free one."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOPULSE_")}
    env.update(
        PYTHONUNBUFFERED="1",
        CRYPTOPULSE_BROKER_PORT=str(free_port()),
        CRYPTOPULSE_GATEWAY_PORT=str(free_port()),
        CRYPTOPULSE_INGESTOR_METRICS_PORT=str(free_port()),
        CRYPTOPULSE_PROCESSOR_METRICS_PORT=str(free_port()),
        CRYPTOPULSE_GATEWAY_METRICS_PORT=str(free_port()),
    )
    env.update(extra)
    return env


class Up:
    """`cryptopulse up` as a child process in its own session, output captured to a file."""

    def __init__(self, env: dict[str, str], log: Path, *args: str) -> None:
        self.env = env
        self.log_path = log
        self._log = open(log, "wb")  # noqa: SIM115 (closed in close())
        self.process = subprocess.Popen([sys.executable, "-m", "services.cli", "up", *args], env=env,
                                        stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        start_new_session=True, cwd=REPO)

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.env['CRYPTOPULSE_GATEWAY_PORT']}/ws"

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return
            if self.process.poll() is not None:
                raise AssertionError(f"cryptopulse up exited ({self.process.returncode}):\n{self.output()}")
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not printed within {timeout} s:\n{self.output()}")

    def descendants(self) -> set[int]:
        """PIDs of every process below `up` (children and their children)."""
        found: set[int] = set()
        todo = [self.process.pid]
        while todo:
            pid = todo.pop()
            for task in Path(f"/proc/{pid}/task").glob("*"):
                try:
                    kids = (task / "children").read_text().split()
                except OSError:
                    continue
                for kid in map(int, kids):
                    if kid not in found:
                        found.add(kid)
                        todo.append(kid)
        return found

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self._log.close()


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except OSError:
        return False


def wait_gone(pids: set[int], timeout: float) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = {p for p in pids if alive(p)}
        if not left:
            return set()
        time.sleep(0.1)
    return {p for p in pids if alive(p)}


async def collect(url: str, channels: list[str], until: Any, timeout: float) -> dict[str, dict[str, Any]]:
    """Subscribe and keep the latest `data` per channel until ``until(latest)`` is true."""
    latest: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            async with websockets.connect(url, open_timeout=5) as ws:
                await ws.send(orjson.dumps({"op": "subscribe", "id": 1, "channels": channels}).decode())
                while time.monotonic() < deadline:
                    try:
                        raw = await asyncio.wait_for(ws.recv(), timeout=max(0.1, deadline - time.monotonic()))
                    except TimeoutError:
                        break
                    message = orjson.loads(raw)
                    if message.get("type") in ("snapshot", "update") and message.get("data") is not None:
                        latest[message["channel"]] = message["data"]
                        if until(latest):
                            return latest
        except (OSError, websockets.exceptions.WebSocketException):
            await asyncio.sleep(0.5)
    raise AssertionError(f"condition not met within {timeout} s; latest: {latest}")
