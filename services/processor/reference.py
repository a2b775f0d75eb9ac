"""The processor's asset universe (circulating supply, sector tags), bundled and on a topic.

The bundled file (read by :mod:`services.common.assets`) is the default universe; records on the
compacted ``cryptopulse.assets`` topic (key asset) replace an asset's entry as they arrive, so a
change of supply or sectors is applied without a restart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from services.common.assets import BUNDLED_ASSETS, TOTAL, AssetInfo, read_file

__all__ = ["BUNDLED_ASSETS", "TOTAL", "AssetInfo", "Universe", "bundled_universe", "read_file"]


@dataclass
class Universe:
    """The assets known to the processor and the sector names; ``version`` moves on every change."""

    assets: dict[str, AssetInfo] = field(default_factory=dict)
    sector_names: dict[str, str] = field(default_factory=dict)
    version: int = 0

    def apply(self, info: AssetInfo) -> bool:
        """Add or replace an asset; True when something changed."""
        if self.assets.get(info.asset) == info:
            return False
        self.assets[info.asset] = info
        self.version += 1
        return True

    def get(self, asset: str) -> AssetInfo | None:
        return self.assets.get(asset)

    def sectors(self) -> list[str]:
        """Every sector id with a member, plus ``total``."""
        found = {s for info in self.assets.values() for s in info.sectors}
        return [TOTAL, *sorted(found)]

    def members(self, sector: str) -> list[str]:
        if sector == TOTAL:
            return sorted(self.assets)
        return sorted(a for a, info in self.assets.items() if sector in info.sectors)

    def copy(self) -> Universe:
        return Universe(dict(self.assets), dict(self.sector_names), self.version)


def bundled_universe(path: Path = BUNDLED_ASSETS) -> Universe:
    records, names = read_file(path)
    universe = Universe(sector_names=names)
    for info in records:
        universe.apply(info)
    return universe
