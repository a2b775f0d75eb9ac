"""`cryptopulse up` as a new user runs it: updates reach a websocket client, Ctrl-C leaves nothing."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.stack import SAMPLE, Up, collect, stack_env, wait_gone

READY = "Ctrl-C stops everything"


@pytest.fixture
def up(tmp_path: Path):  # type: ignore[no-untyped-def]
    stacks: list[Up] = []

    def start(*args: str, **env: str) -> Up:
        stack = Up(stack_env(**env), tmp_path / f"up{len(stacks)}.log", *args)
        stacks.append(stack)
        return stack

    yield start
    for stack in stacks:
        stack.close()


def test_up_delivers_updates_and_ctrl_c_leaves_no_process(up) -> None:  # type: ignore[no-untyped-def]
    stack = up("--source", f"replay:{SAMPLE}", "--speed", "max")
    stack.wait_for_output(READY, timeout=30)
    out = stack.output()
    assert "ws://" in out and "/metrics" in out and "replaying: replay:" in out
    assert "reference data: " in out and " assets loaded" in out
    started = time.monotonic()
    latest = asyncio.run(collect(stack.ws_url, ["asset:*", "liquidations:24h:all"],
                                 until=lambda got: any(c.startswith("asset:") for c in got)
                                 and "liquidations:24h:all" in got, timeout=60))
    assert time.monotonic() - started < 60
    assert latest["liquidations:24h:all"]["total_usd"] > 0
    children = stack.descendants()
    assert len(children) >= 4, f"expected broker + 3 services, saw {children}"
    stack.process.send_signal(signal.SIGINT)  # what Ctrl-C delivers to the foreground process
    stack.process.wait(timeout=12)
    assert time.monotonic() - started < 60 + 12
    assert stack.process.returncode == 0, stack.output()
    assert wait_gone(children, timeout=1) == set(), "orphan processes left behind"
    assert "[up] stopped" in stack.output()


def test_killed_supervisor_takes_its_children_along(up) -> None:  # type: ignore[no-untyped-def]
    stack = up("--source", f"replay:{SAMPLE}", "--speed", "max")
    stack.wait_for_output(READY, timeout=30)
    children = stack.descendants()
    assert children
    stack.process.kill()
    stack.process.wait()
    assert wait_gone(children, timeout=10) == set()


def test_a_dying_child_stops_the_stack_non_zero(up) -> None:  # type: ignore[no-untyped-def]
    stack = up("--source", f"replay:{SAMPLE}", "--speed", "max")
    stack.wait_for_output(READY, timeout=30)
    gateway = next(pid for pid in stack.descendants()
                   if "gateway" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"))
    import os

    os.kill(gateway, signal.SIGKILL)
    stack.process.wait(timeout=15)
    assert stack.process.returncode != 0
    assert "gateway died with exit code -9" in stack.output()


def test_busy_broker_port_is_a_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = stack_env(CRYPTOPULSE_BROKER_PORT=str(port))
        result = subprocess.run([sys.executable, "-m", "services.cli", "up"], env=env, capture_output=True,
                                text=True, timeout=60)
    assert result.returncode == 2
    assert f"port 127.0.0.1:{port} is already in use" in result.stderr
    assert result.stderr.strip().count("\n") == 0


def test_unreachable_external_kafka_is_a_one_line_error() -> None:
    from services.common.broker import free_port

    env = stack_env(CRYPTOPULSE_KAFKA_BOOTSTRAP=f"127.0.0.1:{free_port()}")
    result = subprocess.run([sys.executable, "-m", "services.cli", "up"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert "unreachable" in result.stderr
    assert result.stderr.strip().count("\n") == 0
