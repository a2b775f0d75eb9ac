"""A real Prometheus server scrapes real cryptopulse processes on loopback (1 s interval, the real
rules.yml); the HTTP API shows every target up and the key series moving."""

from __future__ import annotations

import shutil
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

from services.common.broker import EmbeddedBroker
from tests.e2e.stack import Up, stack_env
from tests.ops.contract import load_rules
from tests.ops.promserver import PrometheusServer, loopback_config, wait_until
from tests.ops.scrape import SAMPLE, metrics_ports, missing_commands, service_env

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("prometheus") is None,
                       reason="prometheus missing: apt-get install prometheus (.ci/run does)"),
]

# The series that must grow while a replay flows through the pipeline, one per service.
MOVING = {
    "ingestor": "sum(cryptopulse_ingestor_frames_total) or vector(0)",
    "processor": "sum(cryptopulse_processor_events_total) or vector(0)",
    "gateway": "sum(cryptopulse_gateway_kafka_records_total) or vector(0)",
}


def test_loopback_config_keeps_jobs_and_rules_and_drops_discovery() -> None:
    base: dict[str, Any] = {"global": {"scrape_interval": "15s"}, "rule_files": ["rules.yml"],
            "scrape_configs": [{"job_name": "processor", "dns_sd_configs": [{"names": ["processor"]}]},
                               {"job_name": "other", "static_configs": [{"targets": ["x:1"]}]}]}
    config = loopback_config(base, {"processor": ["127.0.0.1:5"]})
    assert config["scrape_configs"] == [{"job_name": "processor", "static_configs": [{"targets": ["127.0.0.1:5"]}]}]
    assert config["global"]["scrape_interval"] == "1s"
    assert config["rule_files"][0].endswith("deploy/prometheus/rules.yml")
    assert base["scrape_configs"][0]["dns_sd_configs"], "the base config is not modified"


def test_real_prometheus_scrapes_the_gateway_and_sees_connections(
        broker: EmbeddedBroker, services, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ports = metrics_ports()
    env = service_env(broker.port, ports)
    gateway = services("gateway", env=env)
    prometheus = PrometheusServer({"gateway": [f"127.0.0.1:{ports['gateway']}"]}, tmp_path)
    try:
        prometheus.wait_ready()
        wait_until(lambda: prometheus.target_health().get("gateway") == "up", 40, "gateway target up",
                   lambda: gateway.output()[-2000:])
        loaded = {rule["name"] for group in prometheus.api("rules")["groups"] for rule in group["rules"]}
        assert {r.get("alert") or r.get("record") for r in load_rules()} == loaded
        info = prometheus.query('cryptopulse_build_info{job="gateway"}')
        assert [labels["service"] for labels, _ in info] == ["gateway"]

        url = f"ws://127.0.0.1:{env['CRYPTOPULSE_GATEWAY_PORT']}/ws"
        with ExitStack() as clients:
            for _ in range(3):
                clients.enter_context(connect(url, open_timeout=10))
            wait_until(lambda: prometheus.value("cryptopulse_gateway_connections") == 3, 20,
                       "3 connections seen by Prometheus")
        wait_until(lambda: prometheus.value("cryptopulse_gateway_connections") == 0, 20,
                   "connections back to 0")
        accepted = prometheus.value('sum(cryptopulse_gateway_connects_total{outcome="accepted"})')
        assert accepted is not None and accepted >= 3
        alerts = prometheus.api("alerts")["alerts"]
        assert not [a for a in alerts if a["labels"]["alertname"] == "CryptopulseTargetDown"]
    finally:
        prometheus.stop()


@pytest.mark.skipif(bool(missing_commands()), reason=f"not built yet: cryptopulse {missing_commands()}")
def test_real_prometheus_sees_the_replay_move_through_every_service(tmp_path: Path) -> None:
    env = stack_env(CRYPTOPULSE_STOP_TIMEOUT="5")
    targets = {service: [f"127.0.0.1:{env[f'CRYPTOPULSE_{service.upper()}_METRICS_PORT']}"] for service in MOVING}
    prometheus = PrometheusServer(targets, tmp_path)
    up: Up | None = None
    try:
        prometheus.wait_ready()
        started = time.time()
        up = Up(env, tmp_path / "up.log", "--source", f"replay:{SAMPLE}", "--speed", "max")
        stack = up

        def detail() -> str:
            return f"targets: {prometheus.target_health()}\n{stack.output()[-4000:]}"

        wait_until(lambda: prometheus.target_health() == dict.fromkeys(MOVING, "up"), 45, "all targets up", detail)
        for service, expr in MOVING.items():
            wait_until(lambda expr=expr: (prometheus.value(expr) or 0) > 0, 45,  # type: ignore[misc]
                       f"{service}: {expr} > 0", detail)
        time.sleep(1.5)  # one more scrape of every target
        for service, expr in MOVING.items():
            values = prometheus.range_values(expr, started, time.time())
            assert values and max(values) > min(values), f"{service}: {expr} did not move: {values}"
        # the real rules.yml evaluates over the real series
        wait_until(lambda: prometheus.query("venue_outcome:cryptopulse_ingestor_frames:rate1m"), 15,
                   "recording rule venue_outcome:cryptopulse_ingestor_frames:rate1m has a result", detail)
    finally:
        if up is not None:
            up.close()
        prometheus.stop()
