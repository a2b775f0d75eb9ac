"""The scenario's asset universe: the bundled ``assets.json`` (supplies, sectors) as plain records."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ASSETS_FILE = Path(__file__).resolve().parents[1] / "common" / "data" / "assets.json"
AI = "ai"


@dataclass(frozen=True, slots=True)
class Asset:
    asset: str
    supply: float
    sectors: tuple[str, ...]
    stablecoin: bool

    @property
    def ai(self) -> bool:
        return AI in self.sectors


@cache
def load_universe(path: Path = ASSETS_FILE) -> tuple[Asset, ...]:
    data = json.loads(path.read_text())
    return tuple(
        Asset(row["asset"], float(row["circulating_supply"]), tuple(row["sectors"]), bool(row.get("stablecoin")))
        for row in data["assets"]
    )
