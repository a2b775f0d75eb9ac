"""Shared fixtures: a real embedded Kafka broker on a free port, and service processes.

Tansu starts in milliseconds and keeps everything in memory, so each test module (or test) gets
a fresh broker: no state leaks between tests and every test picks its own free ports.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common.broker import EmbeddedBroker, free_port
from services.common.kafka import create_topics

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
# Every test broker is Tansu, which returns the records of compressed batches at wrong offsets. Tests
# and the services they start often reach it as an external Kafka (--kafka, CRYPTOPULSE_KAFKA_BOOTSTRAP),
# where producers would compress by default: keep every producer that reads the environment uncompressed.
os.environ["CRYPTOPULSE_KAFKA_COMPRESSION"] = "none"


def start_broker() -> EmbeddedBroker:
    broker = EmbeddedBroker(port=free_port()).start()
    asyncio.run(create_topics(broker.bootstrap))
    return broker


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    """A fresh embedded broker with every registry topic created (function scope)."""
    broker = start_broker()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="module")
def module_broker() -> Iterator[EmbeddedBroker]:
    """One embedded broker with every registry topic, shared by the tests of a module."""
    broker = start_broker()
    try:
        yield broker
    finally:
        broker.stop()


class ServiceProcess:
    """A ``cryptopulse <command>`` child process with its output captured to a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop())
        self.process = subprocess.Popen(argv, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True, cwd=REPO)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()
        return self.process.returncode


@pytest.fixture
def services(tmp_path: Path) -> Iterator[callable]:  # type: ignore[valid-type]
    """Factory: ``services("gateway", ["--flag"], env={...})`` starts ``cryptopulse gateway`` as a process."""
    started: list[ServiceProcess] = []

    def start(command: str, args: list[str] | None = None, env: dict[str, str] | None = None,
              name: str | None = None) -> ServiceProcess:
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        argv = [sys.executable, "-m", "services.cli", command, *(args or [])]
        proc = ServiceProcess(name or command, argv, full_env, tmp_path)
        started.append(proc)
        return proc

    yield start
    for proc in reversed(started):
        proc.stop()
