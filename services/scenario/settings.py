"""Scenario settings (environment ``CRYPTOPULSE_<FIELD>``; CLI flags override)."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.settings import register, setting


@register
@dataclass(frozen=True)
class ScenarioSettings:
    scenario_density: float = setting(
        0.1, "Scenario trades per asset per minute per venue (fractional allowed); figures do not depend on it.")
    scenario_seed: int = setting(7, "Seed of the scenario's intraday paths, trade splits and bad input.")
    scenario_bad_fraction: float = setting(
        0.0005, "Fraction of trade frames followed by a malformed variant (dead-lettered by the ingestor).")
    scenario_dup_fraction: float = setting(
        0.0005, "Fraction of frames replayed a second time a little later (must not move any total).")
