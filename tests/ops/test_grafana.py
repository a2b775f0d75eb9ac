"""Grafana provisioning and dashboards: valid structure, one datasource uid, only contract metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ops.contract import BUILTIN_SERIES, DEPLOY, REPO, contract_samples, used_metrics

GRAFANA = DEPLOY / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
PANEL_TYPES = {"row", "stat", "timeseries", "bargauge", "gauge", "table", "barchart", "text"}


def datasource() -> dict[str, Any]:
    data = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (source,) = data["datasources"]
    result: dict[str, Any] = source
    return result


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for panel in board["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def load(path: Path) -> dict[str, Any]:
    board: dict[str, Any] = json.loads(path.read_text())
    return board


def test_datasource_points_at_the_compose_prometheus() -> None:
    source = datasource()
    assert (source["type"], source["url"], source["access"]) == ("prometheus", "http://prometheus:9090", "proxy")
    assert source["uid"] and source["isDefault"] is True


def test_dashboard_provider_loads_the_mounted_directory() -> None:
    data = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "dashboards.yml").read_text())
    (provider,) = data["providers"]
    assert provider["type"] == "file"
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{provider['options']['path']}:ro" in mounts
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in mounts


def test_both_dashboards_exist_with_unique_uids() -> None:
    assert {p.name for p in DASHBOARDS} == {"pipeline-health.json", "market.json"}
    uids = [load(p)["uid"] for p in DASHBOARDS]
    assert len(set(uids)) == len(uids)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_structure(path: Path) -> None:
    board = load(path)
    assert board["title"] and board["uid"] and isinstance(board["schemaVersion"], int)
    ids = [p["id"] for p in panels(board)]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    uid = datasource()["uid"]
    for panel in panels(board):
        assert panel["type"] in PANEL_TYPES, panel["type"]
        grid = panel["gridPos"]
        assert grid["w"] >= 1 and grid["h"] >= 1 and grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target.get("datasource", panel["datasource"]) == panel["datasource"], panel["title"]


def test_panels_do_not_overlap() -> None:
    for path in DASHBOARDS:
        cells: dict[tuple[int, int], str] = {}
        for panel in panels(load(path)):
            grid = panel["gridPos"]
            for x in range(grid["x"], grid["x"] + grid["w"]):
                for y in range(grid["y"], grid["y"] + grid["h"]):
                    assert (x, y) not in cells, f"{path.name}: {panel['title']} overlaps {cells[(x, y)]}"
                    cells[(x, y)] = panel["title"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_queried_metric_is_in_the_contract(path: Path) -> None:
    known = contract_samples()
    used: set[str] = set()
    for panel in panels(load(path)):
        for target in panel.get("targets", []):
            names = used_metrics(target["expr"])
            assert names <= known, f"{path.name} / {panel['title']}: not in docs/metrics.md: {names - known}"
            assert names or any(s in target["expr"] for s in BUILTIN_SERIES), target["expr"]
            used |= names
    assert used


def test_pipeline_dashboard_covers_every_service_and_market_dashboard_the_figures() -> None:
    queries = {path.name: " ".join(t["expr"] for p in panels(load(path)) for t in p.get("targets", []))
               for path in DASHBOARDS}
    for service in ("ingestor", "processor", "gateway"):
        assert f"cryptopulse_{service}_" in queries["pipeline-health.json"], service
    for needed in ('sector="total"', "cryptopulse_processor_sector_cap_usd", "cryptopulse_processor_liquidations_usd",
                   "by (window, side)", "cryptopulse_processor_rsi"):
        assert needed in queries["market.json"], needed
