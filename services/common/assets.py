"""Reference data every service shares: the asset record and the reader of the bundled ``assets.json``.

One record type (:class:`AssetInfo`: asset, circulating supply, sector tags) and one reader
(:func:`read_data` / :func:`read_file`) serve the processor's universe, the scenario's design and
the reference service that publishes the file (``assets load``, ``cryptopulse up``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.common.events import InvalidEvent

BUNDLED_ASSETS = Path(__file__).resolve().parent / "data" / "assets.json"
TOTAL = "total"   # the sector every asset is in, implicit in the records


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


def read_data(path: Path = BUNDLED_ASSETS) -> dict[str, Any]:
    """The parsed assets file (``as_of``, ``source``, ``sectors``, ``assets``), the bundled one by default."""
    data: dict[str, Any] = json.loads(Path(path).read_text())
    return data


def read_file(path: Path = BUNDLED_ASSETS) -> tuple[list[AssetInfo], dict[str, str]]:
    """The asset records and sector names of an assets file (the bundled one by default)."""
    data = read_data(path)
    records = [AssetInfo.from_dict(a) for a in data["assets"]]
    return records, dict(data.get("sectors", {}))
