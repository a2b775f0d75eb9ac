"""The scenario's asset universe: the bundled ``assets.json`` (supplies, sectors) as plain records."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from services.processor.reference import BUNDLED_ASSETS, read_file

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
def load_universe(path: Path = BUNDLED_ASSETS) -> tuple[Asset, ...]:
    """The universe as the processor reads it (same file, same checks), in the file's order."""
    records, _names = read_file(path)
    return tuple(Asset(info.asset, info.circulating_supply, info.sectors, info.stablecoin) for info in records)
