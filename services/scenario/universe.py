"""The scenario's asset universe: the bundled ``assets.json`` records, in the file's order."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from services.common.assets import BUNDLED_ASSETS, AssetInfo, read_file

AI = "ai"


def is_ai(asset: AssetInfo) -> bool:
    return AI in asset.sectors


@cache
def load_universe(path: Path = BUNDLED_ASSETS) -> tuple[AssetInfo, ...]:
    """The universe as the processor reads it (same reader, same checks), in the file's order."""
    records, _names = read_file(path)
    return tuple(records)
