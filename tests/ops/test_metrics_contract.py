"""The metrics contract: docs/metrics.md is generated from the declarations and up to date; names and
labels follow the conventions (bounded labels only)."""

from __future__ import annotations

import re
import subprocess
import sys

from services.catalog import all_metrics
from services.common.metrics_doc import SERVICES, exposed_name, for_service, render, service_of
from tests.ops.contract import REPO

DOC = REPO / "docs" / "metrics.md"

# Every label name in use, each with a bounded value set (see the metrics modules' docstrings).
BOUNDED_LABELS = {
    "venue", "outcome", "kind", "reason", "topic", "partition", "stream", "table",
    "family", "code", "limit", "error", "sector", "window", "side", "series", "interval", "handler",
}
UNBOUNDED = re.compile(r"(client|conn|session|user|ip|addr|trade|order|^id$|_id$|symbol|instrument|channel|key)")

NAME = re.compile(r"^cryptopulse_(ingestor|processor|gateway)_[a-z][a-z0-9_]*[a-z0-9]$")


def test_docs_metrics_md_is_generated_and_up_to_date() -> None:
    assert DOC.read_text() == render(all_metrics()), "run `cryptopulse metrics > docs/metrics.md`"
    check = subprocess.run([sys.executable, "-m", "services.cli", "metrics", "--check", str(DOC)],
                           cwd=REPO, capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr


def test_check_flag_fails_on_a_stale_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    stale = tmp_path / "metrics.md"
    stale.write_text(render(all_metrics()).replace("counter", "gauge", 1))
    check = subprocess.run([sys.executable, "-m", "services.cli", "metrics", "--check", str(stale)],
                           cwd=REPO, capture_output=True, text=True, timeout=60)
    assert check.returncode == 1
    assert "out of date" in check.stderr


def test_every_declared_metric_is_documented_once() -> None:
    text = DOC.read_text()
    for doc in all_metrics():
        assert text.count(f"| `{exposed_name(doc)}` |") == 1, doc.name


def test_every_service_declares_metrics_and_build_info_is_shared() -> None:
    docs = all_metrics()
    for service in SERVICES:
        own = [d for d in for_service(docs, service) if service_of(d) == service]
        assert own, f"{service} declares no metric"
    assert [d.name for d in docs if service_of(d) == "all"] == ["cryptopulse_build"]


def test_names_follow_prometheus_conventions() -> None:
    for doc in all_metrics():
        if doc.type == "info":
            continue
        assert NAME.match(doc.name), doc.name
        assert not doc.name.endswith("_total"), f"{doc.name}: the client adds _total to counters"
        if doc.type == "histogram":
            assert doc.name.endswith("_seconds"), f"{doc.name}: histograms here measure time in seconds"
        assert doc.help.strip(), f"{doc.name} has no help text"


def test_names_use_base_units() -> None:
    for doc in all_metrics():
        assert not re.search(r"_(ms|milliseconds|minutes|hours|kb|kilobytes|mb|megabytes|percent|pct)$", doc.name), (
            f"{doc.name}: use base units (seconds, bytes, ratio)"
        )


def test_label_names_are_bounded() -> None:
    for doc in all_metrics():
        for label in doc.labels:
            assert not UNBOUNDED.search(label), f"{doc.name}{{{label}}} looks unbounded (per client/trade)"
            assert label in BOUNDED_LABELS, (
                f"{doc.name}{{{label}}}: new label; add it to BOUNDED_LABELS only if its values are a small fixed set"
            )
        assert len(doc.labels) <= 2, f"{doc.name} has {len(doc.labels)} labels: cardinality multiplies"
