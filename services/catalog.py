"""What exists: the services, their settings, metric modules, commands and ingest sources.

The one module that names every service (the wiring room, docs/architecture.md). The command line
and the docs tools read it; no service and nothing in ``common`` imports it, so the services stay
unaware of each other. Modules are named, not imported, until asked for: importing a metrics
module declares its metrics in this process's /metrics, so only the contract tools load them all.
"""

from __future__ import annotations

import importlib
from typing import Any

from services.common.metrics import MetricDoc, declared_metrics
from services.common.settings import describe, registered

SETTINGS_MODULES = (
    "services.gateway.settings",
    "services.ingestor.backfill.settings",
    "services.ingestor.journal",
    "services.ingestor.settings",
    "services.processor.settings",
    "services.reference.settings",
    "services.scenario.settings",
    "services.supervisor",
)

METRIC_MODULES = (
    "services.ingestor.metrics",
    "services.processor.metrics",
    "services.gateway.metrics",
)

COMMAND_MODULES = (
    "services.ingestor.cli",
    "services.processor.cli",
    "services.gateway.cli",
    "services.report",
    "services.reference.cli",
    "services.ingestor.backfill.cli",
    "services.supervisor",
)

SOURCES = {
    "scenario": ("services.scenario.source", "open_scenario"),
}
"""``--source NAME`` of the ingestor: (module, opener); the module is imported when the source opens."""


def _load(modules: tuple[str, ...]) -> None:
    for module in modules:
        importlib.import_module(module)


def settings_classes() -> list[type[Any]]:
    """Every settings class of every service (importing their modules registers them)."""
    _load(SETTINGS_MODULES)
    return registered()


def all_env_vars() -> set[str]:
    """Every ``CRYPTOPULSE_*`` variable the code reads (the docs and the compose-file test use it)."""
    return {name for cls in settings_classes() for name, _, _ in describe(cls)}


def all_metrics() -> list[MetricDoc]:
    """Every metric declared by the services, with its type, labels and help."""
    _load(METRIC_MODULES)
    return declared_metrics()


def _opener(module: str, name: str) -> Any:
    def opener(settings: Any, **arguments: Any) -> Any:
        return getattr(importlib.import_module(module), name)(settings, **arguments)

    return opener


def plug_sources() -> None:
    """Hand the ingestor every source of :data:`SOURCES` (it knows none by name)."""
    from services.ingestor.sources import plug

    for source, (module, name) in SOURCES.items():
        plug(source, _opener(module, name))
