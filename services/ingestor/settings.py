"""Ingestor settings (environment ``CRYPTOPULSE_<FIELD>``; CLI flags override)."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.settings import register, setting


@register
@dataclass(frozen=True)
class IngestorSettings:
    ingestor_metrics_port: int = setting(9301, "Ingestor Prometheus /metrics port.")
    ingest_source: str = setting(
        "scenario",
        "What to ingest: 'scenario' (built-in 2025-01-27 replay), 'replay:PATH' (recorded frames) "
        "or 'live' (exchange websockets).",
    )
    replay_speed: str = setting("max", "Replay speed: 1 = real time, N = N x faster, 'max' = as fast as possible.")
    hold: bool = setting(True, "After a finite source ends, stay up (serving metrics) instead of exiting.")
