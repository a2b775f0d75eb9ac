"""Helpers shared by the ops tests: the contract's sample names and the metrics a PromQL query uses."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from services.catalog import all_metrics
from services.common.metrics import MetricDoc
from services.common.metrics_doc import exposed_name

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
PROMETHEUS_DIR = DEPLOY / "prometheus"

# Series Prometheus itself adds to every target (not ours to declare).
BUILTIN_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}

_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')
_METRIC = re.compile(r"(?<![\w:.$])cryptopulse_[a-z0-9_]+(?![\w:])")
_RECORDED = re.compile(r"(?<![\w:.$])[a-z_]+:[a-z0-9_:]+(?![\w:])")


def sample_names(doc: MetricDoc) -> set[str]:
    """Every sample name a metric of the contract can produce in a scrape."""
    if doc.type == "histogram":
        return {f"{doc.name}_bucket", f"{doc.name}_sum", f"{doc.name}_count"}
    return {exposed_name(doc)}


def contract_samples() -> set[str]:
    return {name for doc in all_metrics() for name in sample_names(doc)}


def used_metrics(expr: str) -> set[str]:
    """``cryptopulse_*`` series names a PromQL expression reads (string literals ignored)."""
    return set(_METRIC.findall(_QUOTED.sub('""', expr)))


def used_recorded(expr: str) -> set[str]:
    """Recorded series (``level:metric:operation``) a PromQL expression reads."""
    return set(_RECORDED.findall(_QUOTED.sub('""', expr)))


def load_rules() -> list[dict[str, Any]]:
    data = yaml.safe_load((PROMETHEUS_DIR / "rules.yml").read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def recorded_names() -> set[str]:
    return {rule["record"] for rule in load_rules() if "record" in rule}


def load_prometheus_config() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    return config
