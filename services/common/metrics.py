"""Prometheus plumbing shared by the services: the /metrics server and ``cryptopulse_build_info``.

Each service declares its own metrics once, in its ``metrics`` module, named
``cryptopulse_<service>_<what>_<unit>`` (``_total`` for counters) with bounded labels.
:func:`all_metrics` imports those modules and lists every declared metric (for the docs and the
contract test).
"""

from __future__ import annotations

import importlib
import itertools
import platform
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import REGISTRY, Info, start_http_server
from prometheus_client.metrics import MetricWrapperBase

from services.common.errors import StartupError

SERVICE_METRIC_MODULES = (
    "services.ingestor.metrics",
    "services.processor.metrics",
    "services.gateway.metrics",
)

BUILD_INFO = Info("cryptopulse_build", "Version and runtime of this cryptopulse process.")


@dataclass(frozen=True)
class MetricDoc:
    name: str
    type: str
    labels: tuple[str, ...]
    help: str


def set_build_info(service: str) -> None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("cryptopulse")
    except PackageNotFoundError:
        ver = "0+unknown"
    BUILD_INFO.info({"version": ver, "service": service, "python": platform.python_version()})


def serve_metrics(port: int, host: str = "0.0.0.0", service: str = "") -> None:
    """Start the /metrics HTTP server in a thread; a busy port is a one-line StartupError."""
    set_build_info(service)
    try:
        start_http_server(port, addr=host)
    except OSError as exc:
        raise StartupError(
            f"metrics port {host}:{port} for {service or 'this service'} is not available ({exc.strerror}): "
            f"set CRYPTOPULSE_{service.upper()}_METRICS_PORT to a free port"
        ) from exc


def init_children(metric: MetricWrapperBase, *label_values: Iterable[str]) -> None:
    """Create the child of every combination of known label values, so each series is exported (at 0)
    from start-up: ``rate()``/``increase()`` and absence-based alerts then see it before the first event.

    ``init_children(FRAMES, venues, ("ok", "ignored", "deadletter"))``: one iterable per label, in order.
    """
    for combination in itertools.product(*label_values):
        metric.labels(*combination)


def all_metrics() -> list[MetricDoc]:
    """Every metric declared by the services, with its type, labels and help."""
    for module in SERVICE_METRIC_MODULES:
        importlib.import_module(module)
    docs: list[MetricDoc] = []
    for collector in list(REGISTRY._collector_to_names):  # the registry has no public iterator
        for family in collector.describe() if hasattr(collector, "describe") else []:
            if not family.name.startswith("cryptopulse_"):
                continue
            labels = tuple(getattr(collector, "_labelnames", ()))
            docs.append(MetricDoc(family.name, family.type, labels, family.documentation))
    return sorted(docs, key=lambda d: d.name)
