"""Scraping helpers of the ops tests: fetch and parse a /metrics page, compare it with the contract,
and start the services as real processes on an embedded broker."""

from __future__ import annotations

import os
import sys
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from services.cli import build_parser
from services.common.broker import free_port
from services.common.metrics import MetricDoc
from tests.conftest import ServiceProcess
from tests.ops.contract import REPO, sample_names

SAMPLE = REPO / "services" / "ingestor" / "data" / "sample-binance-usdm.jsonl"
COMMANDS = {"ingestor": "ingest", "processor": "process", "gateway": "gateway"}


@dataclass(frozen=True)
class Exposition:
    families: frozenset[str]
    samples: frozenset[str]
    values: dict[tuple[str, tuple[tuple[str, str], ...]], float]

    def total(self, name: str) -> float:
        """Sum of every sample called ``name`` (all label sets)."""
        return sum(v for (sample, _), v in self.values.items() if sample == name)


def parse(text: str) -> Exposition:
    families: set[str] = set()
    values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        families.add(family.name)
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return Exposition(frozenset(families), frozenset(name for name, _ in values), values)


def fetch(url: str, timeout: float = 5) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body: bytes = response.read()
    return body.decode()


def family_name(doc: MetricDoc) -> str:
    """The family name the parser reports (counters without ``_total``; info as ``*_info``)."""
    return doc.name + "_info" if doc.type == "info" else doc.name


def missing_families(docs: Iterable[MetricDoc], exposition: Exposition) -> list[str]:
    return sorted(family_name(d) for d in docs if family_name(d) not in exposition.families)


def missing_samples(docs: Iterable[MetricDoc], exposition: Exposition) -> list[str]:
    """Documented metrics without any sample (a labeled metric whose children were never created)."""
    return sorted(d.name for d in docs if not sample_names(d) & exposition.samples)


def command_exists(command: str) -> bool:
    parser = build_parser()
    choices = next(a.choices for a in parser._subparsers._group_actions)  # type: ignore[union-attr]
    return command in (choices or {})


def missing_commands() -> list[str]:
    return [cmd for cmd in COMMANDS.values() if not command_exists(cmd)]


def metrics_ports() -> dict[str, int]:
    return {service: free_port() for service in COMMANDS}


def service_env(broker_port: int, ports: dict[str, int]) -> dict[str, str]:
    """Environment of a service process on the embedded broker at ``broker_port`` with free ports."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOPULSE_")}
    env.update(
        PYTHONUNBUFFERED="1",
        CRYPTOPULSE_BROKER_PORT=str(broker_port),
        CRYPTOPULSE_GATEWAY_PORT=str(free_port()),
        CRYPTOPULSE_INGESTOR_METRICS_PORT=str(ports["ingestor"]),
        CRYPTOPULSE_PROCESSOR_METRICS_PORT=str(ports["processor"]),
        CRYPTOPULSE_GATEWAY_METRICS_PORT=str(ports["gateway"]),
        CRYPTOPULSE_INGEST_SOURCE=f"replay:{SAMPLE}",
        CRYPTOPULSE_REPLAY_SPEED="max",
        CRYPTOPULSE_HOLD="true",
    )
    return env


def start_service(service: str, env: dict[str, str], log_dir: Path) -> ServiceProcess:
    argv = [sys.executable, "-m", "services.cli", COMMANDS[service]]
    return ServiceProcess(service, argv, env, log_dir)


def wait_scrape(url: str, proc: ServiceProcess, timeout: float = 60) -> Exposition:
    """The first successful scrape of ``url`` while ``proc`` runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.process.poll() is not None:
            raise AssertionError(f"{proc.name} exited {proc.process.returncode}:\n{proc.output()[-3000:]}")
        try:
            return parse(fetch(url))
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} not served within {timeout} s:\n{proc.output()[-3000:]}")
