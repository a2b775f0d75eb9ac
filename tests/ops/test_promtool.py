"""Prometheus configuration and rules: promtool checks, rule unit tests, and only contract metric names."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from tests.ops.contract import (
    PROMETHEUS_DIR,
    contract_samples,
    load_prometheus_config,
    load_rules,
    recorded_names,
    used_metrics,
    used_recorded,
)

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None,
                                reason="promtool missing: apt-get install prometheus (.ci/run does)")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=120)


def test_promtool_check_config() -> None:
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", "rules.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_rules() -> None:
    result = promtool("test", "rules", "rules_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_rules_read_only_contract_metrics_and_defined_recordings() -> None:
    known = contract_samples()
    recorded = recorded_names()
    seen: set[str] = set()
    for rule in load_rules():
        expr = rule["expr"]
        unknown = used_metrics(expr) - known
        assert not unknown, f"{rule.get('record') or rule.get('alert')}: not in docs/metrics.md: {unknown}"
        undefined = used_recorded(expr) - recorded
        assert not undefined, f"{rule.get('record') or rule.get('alert')}: undefined recording {undefined}"
        seen |= used_metrics(expr)
    assert seen, "no rule reads a cryptopulse metric"


def test_every_rule_reading_a_recording_follows_it_in_the_same_group() -> None:
    """Groups run concurrently in no fixed order; rules inside a group run in order. A rule that
    reads a recorded series from another group (or before its recording rule) sees this evaluation's
    value or the previous one's at random, which made the rule unit tests flaky."""
    groups = yaml.safe_load((PROMETHEUS_DIR / "rules.yml").read_text())["groups"]
    for group in groups:
        recorded_so_far: set[str] = set()
        for rule in group["rules"]:
            name = rule.get("record") or rule.get("alert")
            unordered = used_recorded(rule["expr"]) - recorded_so_far
            assert not unordered, f"{name} reads {unordered} not recorded earlier in group {group['name']}"
            if "record" in rule:
                recorded_so_far.add(rule["record"])


def test_every_alert_of_the_issue_exists_and_is_unit_tested() -> None:
    alerts = {rule["alert"] for rule in load_rules() if "alert" in rule}
    required = {"CryptopulseTargetDown", "CryptopulseIngestStalled", "CryptopulseReconnectStorm",
                "CryptopulseIngestEventLagHigh", "CryptopulseDeadLetters", "CryptopulseConsumerLagGrowing",
                "CryptopulseGatewaySlowConsumers"}
    assert required <= alerts
    tests = yaml.safe_load((PROMETHEUS_DIR / "rules_test.yml").read_text())["tests"]
    fired = {case["alertname"] for test in tests for case in test.get("alert_rule_test", [])
             if case.get("exp_alerts")}
    assert alerts <= fired, f"alerts without a firing unit test: {alerts - fired}"
    for rule in load_rules():
        if "alert" in rule:
            assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]
            assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]


def test_prometheus_scrapes_every_service_by_compose_name() -> None:
    config = load_prometheus_config()
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["ingestor"]["static_configs"][0]["targets"] == ["ingestor:9301"]
    assert jobs["gateway"]["static_configs"][0]["targets"] == ["gateway:9303"]
    dns = jobs["processor"]["dns_sd_configs"][0]
    assert (dns["names"], dns["type"], dns["port"]) == (["processor"], "A", 9302)
    assert config["rule_files"] == ["rules.yml"]


def test_metric_name_extraction_ignores_recordings_and_strings() -> None:
    expr = 'rate(cryptopulse_x_total[5m]) and on(job) a:cryptopulse_y:rate1m{job="cryptopulse_z"}'
    assert used_metrics(expr) == {"cryptopulse_x_total"}
    assert used_recorded(expr) == {"a:cryptopulse_y:rate1m"}
