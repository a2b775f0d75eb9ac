"""Instrument metadata per venue: the bundled snapshot, and the tables refreshed from public REST.

``data/instruments.json`` is ``{"as_of", "source", "venues": {venue_id: [row, ...]}}`` with rows
``{"symbol", "instrument", "base", "quote", "market", "kind", "contract_size"}`` plus the optional
``price_scale`` (1000-unit contracts) and ``listed`` (false: curated for the scenario universe only).
:func:`load_instruments` reads it once per venue. In live mode
:func:`services.ingestor.refresh.refresh_from_rest` fetches the venue's instrument endpoints and
hands what the venue module's parser returns to :func:`merge_refreshed`. Each venue module owns its
endpoints and parser; this module does no network I/O. The callers (the ingest command, the sources,
the backfill) hand these tables to the adapters; no venue module imports this one.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import orjson

from services.ingestor.venues.base import Instrument

SNAPSHOT = Path(__file__).resolve().parent / "data" / "instruments.json"

_KINDS = frozenset(("spot", "linear", "inverse", "quanto"))
_MARKETS = frozenset(("spot", "perp", "future"))

# Instruments refreshed from REST (live mode) replace the snapshot of their venue.
_refreshed: dict[str, dict[str, Instrument]] = {}


class InstrumentError(ValueError):
    """The snapshot or a REST response has a row that cannot be used."""


def _row_to_instrument(venue: str, row: dict[str, Any]) -> Instrument:
    kind = row.get("kind", "linear")
    market = row.get("market")
    if kind not in _KINDS or market not in _MARKETS:
        raise InstrumentError(f"{venue}: bad kind/market in {row!r}")
    try:
        return Instrument(
            venue=venue, symbol=str(row["symbol"]), instrument=str(row["instrument"]),
            base=str(row["base"]), quote=str(row["quote"]), market=market, kind=kind,
            contract_size=float(row.get("contract_size", 1.0)),
            price_scale=float(row.get("price_scale", 1.0)), listed=bool(row.get("listed", True)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InstrumentError(f"{venue}: unusable instrument row {row!r}: {exc}") from exc


@cache
def _snapshot() -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(SNAPSHOT.read_bytes())
    return data


def snapshot_as_of() -> str:
    return str(_snapshot()["as_of"])


def snapshot_venues() -> list[str]:
    return sorted(_snapshot()["venues"])


@cache
def _load_snapshot(venue_id: str) -> dict[str, Instrument]:
    rows = _snapshot()["venues"].get(venue_id)
    if rows is None:
        return {}
    return {inst.symbol: inst for inst in (_row_to_instrument(venue_id, row) for row in rows)}


def load_instruments(venue_id: str) -> dict[str, Instrument]:
    """venue-native symbol -> :class:`Instrument` (snapshot, or its refreshed version in live mode)."""
    refreshed = _refreshed.get(venue_id)
    return refreshed if refreshed is not None else _load_snapshot(venue_id)


def merge_refreshed(venue_id: str, parsed: list[Instrument]) -> None:
    """Use ``parsed`` (a venue's live instrument list) over the venue's snapshot from now on."""
    merged = dict(_load_snapshot(venue_id))
    merged.update((inst.symbol, inst) for inst in parsed)
    _refreshed[venue_id] = merged
