"""Reference data: the asset universe (circulating supply, sector tags), bundled and on a topic.

The bundled file (``services/common/data/assets.json``) is the default universe; records on the
compacted ``cryptopulse.assets`` topic (key asset) replace an asset's entry as they arrive, so a
change of supply or sectors is applied without a restart.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.common.events import InvalidEvent

BUNDLED_ASSETS = Path(__file__).resolve().parents[1] / "common" / "data" / "assets.json"
TOTAL = "total"


@dataclass(frozen=True, slots=True)
class AssetInfo:
    asset: str
    circulating_supply: float
    sectors: tuple[str, ...]
    stablecoin: bool = False
    name: str = ""

    @classmethod
    def from_dict(cls, data: Any) -> AssetInfo:
        """Check one ``asset.schema.json`` value; :class:`InvalidEvent` carries the reason."""
        if not isinstance(data, dict):
            raise InvalidEvent("asset record must be a JSON object")
        asset = data.get("asset")
        if not isinstance(asset, str) or not asset:
            raise InvalidEvent("asset must be a non-empty string")
        supply = data.get("circulating_supply")
        if isinstance(supply, bool) or not isinstance(supply, (int, float)) or not math.isfinite(supply) \
                or supply < 0:
            raise InvalidEvent("circulating_supply must be a finite number >= 0")
        sectors = data.get("sectors")
        if not isinstance(sectors, list) or not all(isinstance(s, str) and s for s in sectors):
            raise InvalidEvent("sectors must be a list of sector ids")
        return cls(asset=asset.upper(), circulating_supply=float(supply),
                   sectors=tuple(sorted({s.lower() for s in sectors} - {TOTAL})),
                   stablecoin=bool(data.get("stablecoin", False)), name=str(data.get("name", "")))

    def to_dict(self) -> dict[str, Any]:
        return {"asset": self.asset, "name": self.name or self.asset,
                "circulating_supply": self.circulating_supply, "sectors": list(self.sectors),
                "stablecoin": self.stablecoin}


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


def read_file(path: Path = BUNDLED_ASSETS) -> tuple[list[AssetInfo], dict[str, str]]:
    """The asset records and sector names of an assets file (the bundled one by default)."""
    data = json.loads(Path(path).read_text())
    records = [AssetInfo.from_dict(a) for a in data["assets"]]
    return records, dict(data.get("sectors", {}))


def bundled_universe(path: Path = BUNDLED_ASSETS) -> Universe:
    records, names = read_file(path)
    universe = Universe(sector_names=names)
    for info in records:
        universe.apply(info)
    return universe
