"""Processor settings (environment ``CRYPTOPULSE_<FIELD>``; CLI flags override)."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.settings import register, setting


@register
@dataclass(frozen=True)
class ProcessorSettings:
    processor_metrics_port: int = setting(9302, "Processor Prometheus /metrics port.")
    processor_app_id: str = setting("cryptopulse-processor", "Faust app id (consumer group, changelog prefix).")
