"""``cryptopulse up``: the whole stack on one machine, as supervised child processes.

Starts the embedded broker (unless ``CRYPTOPULSE_KAFKA_BOOTSTRAP`` points at a cluster), creates
the topics, then runs ingestor, processor and gateway as child processes whose output lines are
prefixed with the service name. SIGINT/SIGTERM stop everything (SIGTERM to each child, SIGKILL
after ``CRYPTOPULSE_STOP_TIMEOUT``); a child that exits non-zero stops the stack, which then exits
non-zero. Children die with the supervisor even if it is killed (Linux parent-death signal).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from services.common.broker import EmbeddedBroker, refuse_secure_embedded
from services.common.cli_flags import add_kafka_flags, kafka_settings
from services.common.clock import MINUTE_MS
from services.common.errors import StartupError
from services.common.kafka import create_topics, wait_for_kafka
from services.common.procs import die_with_parent
from services.common.settings import KafkaSettings, MetricsSettings, env_name, load, setting
from services.common.settings import register as register_settings
from services.gateway.settings import GatewaySettings
from services.ingestor.backfill.settings import BackfillSettings
from services.ingestor.settings import IngestorSettings
from services.processor.settings import ProcessorSettings
from services.reference.settings import ReferenceSettings


@register_settings
@dataclass(frozen=True)
class SupervisorSettings:
    """Settings of ``cryptopulse up`` itself."""

    stop_timeout: float = setting(8.0, "Seconds each child gets after SIGTERM before it is killed.")
    data_dir: str = setting("~/.local/share/cryptopulse", "Data directory of `up` (the live journal lives in DATA_DIR/journal).")
    journal: str = setting(
        "auto", "Live raw-frame journal: auto = on with the embedded broker, off with external Kafka (Kafka is the log); on; off.")


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    pump: threading.Thread | None = field(default=None, repr=False)


def service_argv(command: str, *extra: str) -> list[str]:
    """How the supervisor (and the integration tests) start one service as its own process."""
    return [sys.executable, "-m", "services.cli", command, *extra]


def _pump(name: str, stream: IO[bytes], out: IO[str], lock: threading.Lock) -> None:
    prefix = f"[{name}] "
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace").rstrip("\n")
        with lock:
            out.write(prefix + line + "\n")
            out.flush()
    stream.close()


class Stack:
    """Broker + services as child processes; :meth:`run` blocks until stopped."""

    def __init__(self, kafka: KafkaSettings, children: list[Child], stop_timeout: float,
                 env: dict[str, str] | None = None, out: IO[str] = sys.stdout) -> None:
        self.kafka = kafka
        self.children = children
        self.stop_timeout = stop_timeout
        self.env = dict(os.environ if env is None else env)
        self.out = out
        self.lock = threading.Lock()
        self.broker: EmbeddedBroker | None = None
        self._stop = threading.Event()
        self.stop_reason = ""

    def say(self, text: str) -> None:
        with self.lock:
            self.out.write(f"[up] {text}\n")
            self.out.flush()

    def start_kafka(self) -> str:
        if self.kafka.embedded:
            refuse_secure_embedded(self.kafka)
            self.broker = EmbeddedBroker(self.kafka.broker_host, self.kafka.broker_port).start()
            self.say(f"embedded Kafka broker (Tansu, in memory) on {self.broker.bootstrap}")
        bootstrap = self.kafka.bootstrap
        asyncio.run(wait_for_kafka(self.kafka, timeout=15))
        created = asyncio.run(create_topics(self.kafka))
        self.say(f"topics ready on {bootstrap} ({len(created)} created)")
        loaded = asyncio.run(ensure_reference_data(self.kafka))
        if loaded:
            self.say(f"reference data: {loaded} assets loaded from the bundled universe")
        return bootstrap

    def start_children(self, bootstrap: str) -> None:
        env = dict(self.env)
        if self.kafka.embedded:
            # Children must know the broker is the embedded one (no idempotence, short group timeouts).
            env.pop(env_name("kafka_bootstrap"), None)
            env[env_name("broker_host")] = self.kafka.broker_host
            env[env_name("broker_port")] = str(self.kafka.broker_port)
        else:
            env[env_name("kafka_bootstrap")] = bootstrap
        env.setdefault("PYTHONUNBUFFERED", "1")
        for child in self.children:
            child.process = subprocess.Popen(
                child.argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=die_with_parent,
            )
            assert child.process.stdout is not None
            child.pump = threading.Thread(target=_pump, args=(child.name, child.process.stdout, self.out, self.lock),
                                          daemon=True)
            child.pump.start()

    def request_stop(self, reason: str) -> None:
        if not self._stop.is_set():
            self.stop_reason = reason
            self._stop.set()

    def watch(self) -> int:
        """Wait for a stop request or a failing child; return the stack's exit code."""
        finished: set[str] = set()
        code = 0
        while not self._stop.wait(0.2):
            for child in self.children:
                if child.process is None or child.name in finished:
                    continue
                rc = child.process.poll()
                if rc is None:
                    continue
                finished.add(child.name)
                if rc == 0:
                    self.say(f"{child.name} finished (exit code 0); the rest keeps running")
                    continue
                self.say(f"{child.name} died with exit code {rc}; stopping the stack")
                code = rc if rc > 0 else 128 - rc
                self.request_stop(f"{child.name} failed")
            if self.broker and self.broker.process and self.broker.process.poll() is not None:
                self.say(f"embedded broker died with exit code {self.broker.process.returncode}; stopping the stack")
                code = code or 1
                self.request_stop("broker failed")
        return code

    def stop_all(self) -> None:
        running = [c for c in self.children if c.process and c.process.poll() is None]
        for child in running:
            assert child.process is not None
            try:
                os.killpg(child.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + self.stop_timeout
        for child in running:
            assert child.process is not None
            try:
                child.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say(f"{child.name} did not stop within {self.stop_timeout:.0f} s; killing it")
                try:
                    os.killpg(child.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                child.process.wait()
        for child in self.children:
            if child.pump:
                child.pump.join(timeout=2)
        if self.broker:
            self.broker.stop()


async def ensure_reference_data(kafka: KafkaSettings) -> int:
    """Publish the bundled asset universe (and its as-of status) when the assets topic is empty (a
    fresh embedded broker, a new cluster); a cluster that already has reference data keeps it.
    Returns how many were loaded."""
    from aiokafka import TopicPartition

    from services.common.kafka import make_consumer
    from services.common.topics import ASSETS
    from services.reference.service import load_file

    consumer = make_consumer(kafka)
    await consumer.start()
    try:
        partitions = [TopicPartition(ASSETS.name, p) for p in range(ASSETS.partitions)]
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    if any(ends.values()):
        return 0
    return await load_file(kafka)


class ReferenceRefresher:
    """Live mode: refresh the reference data at start (blocking, so backfill and processor see the
    current supplies) and then every ``assets_refresh_interval`` seconds in a background thread."""

    def __init__(self, kafka: KafkaSettings, settings: ReferenceSettings, say: Callable[[str], None]) -> None:
        self.kafka = kafka
        self.settings = settings
        self.say = say
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()

    def refresh_now(self) -> None:
        from services.reference.cli import describe_status
        from services.reference.service import RefreshError, assets_status, describe, refresh

        try:
            plan = asyncio.run(refresh(self.kafka, self.settings))
            self.say(f"reference data refreshed from {self.settings.assets_provider}: {describe(plan)}")
        except RefreshError as exc:
            self.say(str(exc))
        self.say(describe_status(asyncio.run(assets_status(self.kafka))))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="reference-refresh", daemon=True)
        self._thread.start()
        self._ready.wait(5)

    def _run(self) -> None:
        from services.reference.service import refresh_forever

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._ready.set()
            await refresh_forever(self.kafka, self.settings, self._stop, self.say)

        asyncio.run(main())

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout=5)


def journal_dir(kafka: KafkaSettings, supervisor: SupervisorSettings) -> Path | None:
    """Where the live journal is kept, None when it is off (``auto``: on for the embedded broker)."""
    mode = supervisor.journal.strip().lower()
    if mode not in ("auto", "on", "off"):
        raise StartupError(f"CRYPTOPULSE_JOURNAL={supervisor.journal!r}: use auto, on or off")
    if mode == "off" or (mode == "auto" and not kafka.embedded):
        return None
    return Path(supervisor.data_dir).expanduser() / "journal"


def resume_from_journal(kafka: KafkaSettings, directory: Path, stack: Stack) -> None:
    """Hand the journal to the ingestor and, when it holds frames, make them the start of live
    coverage: the backfill then stops before the journal's first minute (no minute counted twice)."""
    from services.ingestor.backfill.run import mark_live
    from services.ingestor.journal import Journal

    stack.env[env_name("journal_dir")] = str(directory)
    first = Journal(directory).first_ts()
    if first is None:
        stack.say(f"journal: {directory} (empty)")
        return
    since = asyncio.run(mark_live(kafka, first - first % MINUTE_MS))
    stack.say(f"journal: {directory}, replayed from {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(since / 1000))}")


def warm_start(kafka: KafkaSettings, settings: BackfillSettings, stack: Stack) -> None:
    """Live mode: backfill what the checkpoints say is missing, then record the minute live trades
    take over from (later backfills never publish a minute from it on: no double counting)."""
    from services.ingestor.backfill.run import backfill, mark_live

    if not settings.backfill_on_start:
        stack.say("backfill skipped (CRYPTOPULSE_BACKFILL_ON_START=false)")
        return
    summary = asyncio.run(backfill(kafka, settings, out=stack.out))
    stack.say(summary.line())
    since = asyncio.run(mark_live(kafka, summary.ranges.cutoff))
    stack.say(f"live trades count from {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(since / 1000))}")


def build_children(kafka_args: list[str], ingest_args: list[str]) -> list[Child]:
    return [
        Child("processor", service_argv("process", *kafka_args)),
        Child("gateway", service_argv("gateway", *kafka_args)),
        Child("ingestor", service_argv("ingest", *kafka_args, *ingest_args)),
    ]


def describe_stack(ingestor: IngestorSettings, processor: ProcessorSettings, gateway: GatewaySettings,
                   metrics: MetricsSettings) -> list[str]:
    host = gateway.gateway_host
    scheme = "https" if metrics.metrics_tls_certfile else "http"    # the children serve /metrics over TLS then
    return [
        f"websocket: ws://{host}:{gateway.gateway_port}/ws  (dashboard: http://{host}:{gateway.gateway_port}/)",
        f"metrics: ingestor {scheme}://127.0.0.1:{ingestor.ingestor_metrics_port}/metrics, "
        f"processor {scheme}://127.0.0.1:{processor.processor_metrics_port}/metrics, "
        f"gateway {scheme}://127.0.0.1:{gateway.gateway_metrics_port}/metrics",
        f"replaying: {ingestor.ingest_source} at speed {ingestor.replay_speed}",
    ]


def cmd_up(args: argparse.Namespace) -> int:
    kafka = kafka_settings(args)
    ingestor = load(IngestorSettings, ingest_source=args.source, replay_speed=args.speed)
    processor = load(ProcessorSettings)
    gateway = load(GatewaySettings)
    supervisor = load(SupervisorSettings)
    metrics = load(MetricsSettings)  # every child serves /metrics: a bad value stops `up` before anything starts
    ingest_args: list[str] = []
    if args.source:
        ingest_args += ["--source", args.source]
    if args.speed:
        ingest_args += ["--speed", args.speed]
    if args.density:
        ingest_args += ["--density", args.density]
    stack = Stack(kafka, build_children([], ingest_args), supervisor.stop_timeout)
    if kafka.log_level:
        stack.env[env_name("log_level")] = kafka.log_level

    def on_signal(signum: int, _frame: Any) -> None:
        stack.request_stop(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    live = ingestor.ingest_source == "live"
    refresher = ReferenceRefresher(kafka, load(ReferenceSettings), stack.say) if live else None
    try:
        bootstrap = stack.start_kafka()
        if refresher is not None:
            refresher.refresh_now()
            refresher.start()
            journal = journal_dir(kafka, supervisor)
            if journal is not None:
                resume_from_journal(kafka, journal, stack)
            warm_start(kafka, load(BackfillSettings), stack)
        stack.start_children(bootstrap)
        for line in describe_stack(ingestor, processor, gateway, metrics):
            stack.say(line)
        stack.say("Ctrl-C stops everything")
        code = stack.watch()
    except StartupError:
        if refresher is not None:
            refresher.stop()
        stack.stop_all()
        raise
    stack.say(f"stopping ({stack.stop_reason})")
    if refresher is not None:
        refresher.stop()
    stack.stop_all()
    stack.say("stopped")
    return code


def register(sub: Any) -> None:
    up = sub.add_parser("up", help="run the whole stack: broker, ingestor, processor, gateway")
    add_kafka_flags(up)
    up.add_argument("--source", help="ingest source (default: the built-in scenario); see `ingest --help`")
    up.add_argument("--speed", help="replay speed: 1, N or max")
    up.add_argument("--density", help="scenario trades per asset per minute per venue (default 0.1)")
    up.set_defaults(handler=cmd_up)

