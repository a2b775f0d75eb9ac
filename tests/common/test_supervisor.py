"""The supervisor's mechanics with real child processes (the full `cryptopulse up` is in tests/e2e)."""

from __future__ import annotations

import io
import os
import sys
import threading
import time
from pathlib import Path

from services.common.broker import free_port
from services.common.settings import KafkaSettings, MetricsSettings, load
from services.gateway.settings import GatewaySettings
from services.ingestor.settings import IngestorSettings
from services.processor.settings import ProcessorSettings
from services.supervisor import Child, Stack, describe_stack

SLEEPER = [sys.executable, "-c", "import time; print('hello', flush=True); time.sleep(120)"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is dead for our purpose
        return stat.read().split()[2] != "Z"


def _stack(children: list[Child], out: io.StringIO) -> Stack:
    kafka = load(KafkaSettings, environ={}, broker_port=free_port())
    return Stack(kafka, children, stop_timeout=3.0, out=out)


def test_child_failure_stops_the_stack_with_its_exit_code() -> None:
    out = io.StringIO()
    failing = Child("failing", [sys.executable, "-c", "import time, sys; time.sleep(0.5); sys.exit(3)"])
    sleeper = Child("sleeper", SLEEPER)
    stack = _stack([sleeper, failing], out)
    bootstrap = stack.start_kafka()
    stack.start_children(bootstrap)
    code = stack.watch()
    stack.stop_all()
    assert code == 3
    assert "failing died with exit code 3" in out.getvalue()
    assert "[sleeper] hello" in out.getvalue()
    assert sleeper.process is not None and sleeper.process.poll() is not None


def test_stop_request_ends_every_child_and_the_broker() -> None:
    out = io.StringIO()
    children = [Child(f"c{i}", SLEEPER) for i in range(3)]
    stack = _stack(children, out)
    bootstrap = stack.start_kafka()
    stack.start_children(bootstrap)
    threading.Timer(0.5, stack.request_stop, args=("test",)).start()
    started = time.monotonic()
    assert stack.watch() == 0
    stack.stop_all()
    assert time.monotonic() - started < 10
    for child in children:
        assert child.process is not None and not _alive(child.process.pid)
    assert stack.broker is not None and stack.broker.process is None


def test_child_that_ignores_sigterm_is_killed_after_the_timeout() -> None:
    stubborn = Child("stubborn", [sys.executable, "-c",
                                  "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                                  "print('ready', flush=True); time.sleep(120)"])
    out = io.StringIO()
    stack = _stack([stubborn], out)
    stack.start_children(stack.start_kafka())
    deadline = time.monotonic() + 10
    while "[stubborn] ready" not in out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.05)
    stack.request_stop("test")
    stack.stop_all()
    assert "did not stop within 3 s; killing it" in out.getvalue()
    assert stubborn.process is not None and not _alive(stubborn.process.pid)


def test_up_prints_the_metrics_urls_with_the_scheme_they_are_served_with(tmp_path: Path) -> None:
    pem = tmp_path / "metrics.pem"
    pem.write_text("not parsed here: only the scheme of the printed URLs is checked")
    services = (load(IngestorSettings, environ={}), load(ProcessorSettings, environ={}), load(GatewaySettings, environ={}))

    def metrics_line(metrics: MetricsSettings) -> str:
        [line] = [line for line in describe_stack(*services, metrics) if line.startswith("metrics:")]
        return line

    plain = metrics_line(load(MetricsSettings, environ={}))
    tls = metrics_line(load(MetricsSettings, environ={}, metrics_tls_certfile=str(pem), metrics_tls_keyfile=str(pem)))
    assert plain.count("http://127.0.0.1:") == 3 and "https://" not in plain
    assert tls.count("https://127.0.0.1:") == 3 and "http://" not in tls
    assert tls.replace("https://", "http://") == plain
