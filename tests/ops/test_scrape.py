"""Every running service exports the metrics the contract (docs/metrics.md) documents for it.

The services run as real processes (`cryptopulse gateway|process|ingest --source replay:...`) on one
embedded broker; each /metrics page is parsed with prometheus_client's parser.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from services.catalog import all_metrics
from services.common.broker import EmbeddedBroker
from services.common.metrics_doc import BUILD_INFO_LABELS, for_service
from tests.conftest import ServiceProcess
from tests.ops.contract import REPO
from tests.ops.scrape import (
    COMMANDS,
    Exposition,
    command_exists,
    fetch,
    metrics_ports,
    missing_families,
    missing_samples,
    parse,
    service_env,
    start_service,
    wait_scrape,
)

pytestmark = pytest.mark.slow

SERVICES = tuple(COMMANDS)


class Pipeline:
    def __init__(self, ports: dict[str, int], procs: dict[str, ServiceProcess], gateway_port: int) -> None:
        self.ports = ports
        self.procs = procs
        self.gateway_port = gateway_port
        self.settled_at = time.monotonic() + 20  # by then the replay has gone through every service

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}/metrics"

    def scrape(self, service: str) -> Exposition:
        if service not in self.procs:
            pytest.skip(f"`cryptopulse {COMMANDS[service]}` does not exist yet")
        return wait_scrape(self.url(service), self.procs[service])


@pytest.fixture(scope="module")
def pipeline(module_broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    log_dir: Path = tmp_path_factory.mktemp("scrape")
    ports = metrics_ports()
    env = service_env(module_broker.port, ports)
    procs: dict[str, ServiceProcess] = {}
    try:
        for service in ("gateway", "processor", "ingestor"):  # consumers first, then the replay
            if command_exists(COMMANDS[service]):
                procs[service] = start_service(service, env, log_dir)
        yield Pipeline(ports, procs, int(env["CRYPTOPULSE_GATEWAY_PORT"]))
    finally:
        for proc in procs.values():
            proc.stop()


@pytest.mark.parametrize("service", SERVICES)
def test_exposition_parses_and_has_every_documented_metric(pipeline: Pipeline, service: str) -> None:
    documented = for_service(all_metrics(), service)
    exposition = pipeline.scrape(service)
    while missing_families(documented, exposition) and time.monotonic() < pipeline.settled_at:
        time.sleep(1)  # a service may finish importing its metrics module after its server is up
        exposition = parse(fetch(pipeline.url(service)))
    assert not missing_families(documented, exposition), (
        f"{service} does not export (not even # TYPE): {missing_families(documented, exposition)}"
    )
    unlabeled = [d for d in documented if not d.labels]
    assert not missing_samples(unlabeled, exposition), missing_samples(unlabeled, exposition)


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_exports_no_other_service_metrics(pipeline: Pipeline, service: str) -> None:
    exposition = pipeline.scrape(service)
    others = sorted(f for f in exposition.families if f.startswith("cryptopulse_")
                    and not f.startswith((f"cryptopulse_{service}_", "cryptopulse_build_")))
    assert not others, f"{service} exports other services' metrics (imported by the CLI?): {others}"


@pytest.mark.parametrize("service", SERVICES)
def test_build_info_names_the_service(pipeline: Pipeline, service: str) -> None:
    exposition = pipeline.scrape(service)
    infos = [dict(labels) for (name, labels) in exposition.values if name == "cryptopulse_build_info"]
    assert len(infos) == 1, infos
    assert set(infos[0]) == set(BUILD_INFO_LABELS)
    assert infos[0]["service"] == service


@pytest.mark.parametrize("service", ["ingestor", "processor", "gateway"])
def test_every_labeled_metric_has_a_series_after_the_replay(pipeline: Pipeline, service: str) -> None:
    documented = for_service(all_metrics(), service)
    exposition = pipeline.scrape(service)
    while missing_samples(documented, exposition) and time.monotonic() < pipeline.settled_at:
        time.sleep(1)
        exposition = parse(fetch(pipeline.url(service)))
    assert not missing_samples(documented, exposition), (
        f"{service}: no series yet for {missing_samples(documented, exposition)}"
    )


COMPOSE_PORTS = {"ingestor": 9301, "processor": 9302, "gateway": 8765}


@pytest.mark.parametrize("service", SERVICES)
def test_the_compose_healthcheck_passes_against_the_running_service(pipeline: Pipeline, service: str) -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    kind, program, *args = compose["services"][service]["healthcheck"]["test"]
    assert (kind, program) == ("CMD", "python")
    pipeline.scrape(service)  # running and serving
    port = pipeline.gateway_port if service == "gateway" else pipeline.ports[service]
    argv = [sys.executable, *(a.replace(f":{COMPOSE_PORTS[service]}/", f":{port}/") for a in args)]
    assert argv[1:] != args, "the probe names the compose port"
    probe = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert probe.returncode == 0, probe.stderr
