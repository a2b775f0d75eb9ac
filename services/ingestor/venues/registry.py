"""Venue id -> adapter: the explicit map of every venue module of this package.

Each module is imported directly: a broken adapter module fails the import of the registry (and
so the ingestor's start) loudly instead of silently losing a venue. A new venue adds its module
here; ``tests/ingestor/venues/test_registry.py`` checks that every module of the package is mapped.
"""

from __future__ import annotations

from services.ingestor.venues import (
    base,
    binance_coinm,
    binance_usdm,
    bitmex,
    bybit,
    coinbase,
    deribit,
    gate,
    htx,
    hyperliquid,
    kraken_futures,
    okx,
)

VENUES: dict[str, base.Venue] = {venue.id: venue for venue in sorted(
    (binance_coinm.VENUE, binance_usdm.VENUE, bitmex.VENUE, bybit.VENUE, coinbase.VENUE, deribit.VENUE, gate.VENUE,
     htx.VENUE, hyperliquid.VENUE, kraken_futures.VENUE, okx.VENUE),
    key=lambda venue: venue.id)}


def venues() -> dict[str, base.Venue]:
    """Every adapter by its id, sorted by id."""
    return VENUES


def get(venue_id: str) -> base.Venue:
    if venue_id not in VENUES:
        raise KeyError(f"unknown venue {venue_id!r}; known: {', '.join(VENUES)}")
    return VENUES[venue_id]
