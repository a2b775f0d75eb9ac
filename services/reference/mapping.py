"""The user-editable mapping from provider categories to sector ids (pure)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.common.errors import StartupError

BUNDLED_MAP = Path(__file__).resolve().parent / "data" / "categories.json"
SECTOR_ID = re.compile(r"^[a-z0-9-]+$")
MAX_SECTORS = 64
MAX_CATEGORIES = 16


class MappingError(StartupError):
    """The category map cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class CategoryMap:
    provider: str
    sectors: dict[str, tuple[str, ...]]   # sector id -> provider category ids
    names: dict[str, str]                 # sector id -> display name
    stablecoin_sector: str | None = None

    def categories(self) -> list[str]:
        """Every provider category to fetch, once, in a stable order."""
        return sorted({c for cats in self.sectors.values() for c in cats})

    def sectors_of(self, category: str) -> list[str]:
        return sorted(s for s, cats in self.sectors.items() if category in cats)


def parse_map(data: Any, where: str = "category map") -> CategoryMap:
    """Check a category map document (see data/categories.json); :class:`MappingError` otherwise."""
    if not isinstance(data, dict) or not isinstance(data.get("sectors"), dict):
        raise MappingError(f"{where}: expected an object with a 'sectors' object")
    sectors: dict[str, tuple[str, ...]] = {}
    names: dict[str, str] = {}
    if len(data["sectors"]) > MAX_SECTORS:
        raise MappingError(f"{where}: more than {MAX_SECTORS} sectors")
    for sector, spec in data["sectors"].items():
        if not isinstance(sector, str) or not SECTOR_ID.match(sector) or sector == "total":
            raise MappingError(f"{where}: sector id {sector!r} must match [a-z0-9-]+ and not be 'total'")
        categories = spec.get("categories") if isinstance(spec, dict) else spec
        if not isinstance(categories, list) or not categories or len(categories) > MAX_CATEGORIES \
                or not all(isinstance(c, str) and c.strip() for c in categories):
            raise MappingError(f"{where}: sector {sector!r} needs 1..{MAX_CATEGORIES} category ids (strings)")
        sectors[sector] = tuple(c.strip() for c in categories)
        name = spec.get("name") if isinstance(spec, dict) else None
        names[sector] = name if isinstance(name, str) and name else sector
    stable = data.get("stablecoin_sector")
    if stable is not None and stable not in sectors:
        raise MappingError(f"{where}: stablecoin_sector {stable!r} is not one of the sectors")
    return CategoryMap(str(data.get("provider", "")), sectors, names, stable)


def load_map(path: str | Path = "") -> CategoryMap:
    """The map at ``path`` (the bundled one when empty)."""
    file = Path(path) if path else BUNDLED_MAP
    try:
        data = json.loads(file.read_text())
    except OSError as exc:
        raise MappingError(f"category map {file}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise MappingError(f"category map {file}: not JSON ({exc})") from None
    return parse_map(data, f"category map {file}")
