"""From a provider's answers to asset records (pure): what the universe becomes, what changed.

Rules (docs/live.md): the universe is every asset already known plus the provider's top N plus
every member of every mapped category. A symbol the provider lists twice (different coins share
tickers) is the coin with the larger cap. An asset's sectors are the sectors whose categories list
it; when a category answer was cut at its limit, an asset missing from it keeps that sector from
its previous record (absence from a truncated list proves nothing). Known assets the provider did
not return keep their record unchanged. Only records that differ are published.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from services.reference.mapping import SECTOR_ID, CategoryMap
from services.reference.market import MarketEntry

COMPARED = ("name", "circulating_supply", "sectors", "stablecoin")


class RecordError(ValueError):
    """An asset record that does not follow asset.schema.json."""


def check_record(data: Any) -> dict[str, Any]:
    """A normalized copy of one asset record (asset upper case, sectors sorted, 'total' implicit)."""
    if not isinstance(data, dict):
        raise RecordError("asset record must be a JSON object")
    asset = data.get("asset")
    if not isinstance(asset, str) or not asset.strip():
        raise RecordError("asset must be a non-empty string")
    supply = data.get("circulating_supply")
    if isinstance(supply, bool) or not isinstance(supply, (int, float)) or not math.isfinite(supply) or supply < 0:
        raise RecordError(f"{asset}: circulating_supply must be a finite number >= 0")
    sectors = data.get("sectors")
    if not isinstance(sectors, list) or not all(isinstance(s, str) and SECTOR_ID.match(s.lower()) for s in sectors):
        raise RecordError(f"{asset}: sectors must be a list of sector ids [a-z0-9-]")
    out = dict(data)
    out.update(asset=asset.strip().upper(), name=str(data.get("name") or asset.strip().upper()),
               circulating_supply=float(supply), sectors=sorted({s.lower() for s in sectors} - {"total"}),
               stablecoin=bool(data.get("stablecoin", False)))
    return out


def same_record(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return all(a.get(k) == b.get(k) for k in COMPARED)


@dataclass
class RefreshPlan:
    changed: list[dict[str, Any]] = field(default_factory=list)
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    kept: int = 0                                   # known assets the provider did not return
    universe: dict[str, dict[str, Any]] = field(default_factory=dict)
    fetched_cap_usd: float = 0.0

    def sector_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for record in self.universe.values():
            for sector in record["sectors"]:
                counts[sector] = counts.get(sector, 0) + 1
        return dict(sorted(counts.items()))


def choose(top: list[MarketEntry], members: Mapping[str, list[MarketEntry]]) -> dict[str, MarketEntry]:
    """One entry per symbol: the larger market cap wins a ticker shared by several coins."""
    chosen: dict[str, MarketEntry] = {}
    for entry in [*top, *(e for cat in sorted(members) for e in members[cat])]:
        held = chosen.get(entry.symbol)
        if held is None or entry.market_cap > held.market_cap:
            chosen[entry.symbol] = entry
    return chosen


def plan_refresh(current: Mapping[str, Mapping[str, Any]], top: list[MarketEntry],
                 members: Mapping[str, list[MarketEntry]], truncated: set[str], cmap: CategoryMap,
                 as_of: str, source: str) -> RefreshPlan:
    """The records to publish so the topic holds the provider's view (see the module rules)."""
    chosen = choose(top, members)
    sectors: dict[str, set[str]] = {symbol: set() for symbol in chosen}
    for category, entries in members.items():
        for entry in entries:
            if chosen[entry.symbol].provider_id == entry.provider_id:
                sectors[entry.symbol].update(cmap.sectors_of(category))
    unsure = {s for s, cats in cmap.sectors.items() if any(c in truncated for c in cats)}
    plan = RefreshPlan(universe={a: dict(r) for a, r in current.items()})
    for symbol, entry in sorted(chosen.items()):
        before = current.get(symbol)
        tags = sectors[symbol] | (set(before.get("sectors", ())) & unsure if before else set())
        record = {"asset": symbol, "name": entry.name, "circulating_supply": entry.circulating_supply,
                  "sectors": sorted(tags), "stablecoin": cmap.stablecoin_sector in tags,
                  "as_of": as_of, "source": source}
        plan.fetched_cap_usd += entry.market_cap
        plan.universe[symbol] = record
        if before is not None and same_record(before, record):
            plan.unchanged += 1
            continue
        plan.changed.append(record)
        if before is None:
            plan.added += 1
        else:
            plan.updated += 1
    plan.kept = len(set(current) - set(chosen))
    return plan
