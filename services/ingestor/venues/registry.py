"""Venue id -> adapter class: the explicit map of every venue module of this package.

Each module is imported directly: a broken adapter module fails the import of the registry (and
so the ingestor's start) loudly instead of silently losing a venue. A new venue adds its class
here; ``tests/ingestor/venues/test_registry.py`` checks that every module of the package is mapped.
Adapters are built with the instrument table the caller hands in (:func:`venues`, :func:`get`);
the classes alone serve what needs no table (ids, endpoints, the REST instrument parsers).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from services.ingestor.venues import (
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
from services.ingestor.venues.base import Instrument, Venue
from services.ingestor.venues.common import Adapter

InstrumentTables = Callable[[str], Mapping[str, Instrument]]
"""The instrument table of a venue id (the caller's: ``ingestor.instruments.load_instruments``)."""

ADAPTERS: dict[str, type[Adapter]] = {adapter.id: adapter for adapter in sorted(
    (binance_coinm.BinanceCoinm, binance_usdm.BinanceUsdm, bitmex.Bitmex, bybit.Bybit, coinbase.Coinbase,
     deribit.Deribit, gate.Gate, htx.Htx, hyperliquid.Hyperliquid, kraken_futures.KrakenFutures, okx.Okx),
    key=lambda adapter: adapter.id)}


def venue_ids() -> tuple[str, ...]:
    """Every venue id, sorted."""
    return tuple(ADAPTERS)


def adapter_class(venue_id: str) -> type[Adapter]:
    if venue_id not in ADAPTERS:
        raise KeyError(f"unknown venue {venue_id!r}; known: {', '.join(ADAPTERS)}")
    return ADAPTERS[venue_id]


def get(venue_id: str, instruments: Mapping[str, Instrument]) -> Venue:
    """The adapter of ``venue_id`` parsing with ``instruments`` (that venue's table)."""
    return adapter_class(venue_id)(instruments)


def venues(tables: InstrumentTables, venue_ids: tuple[str, ...] | None = None) -> dict[str, Venue]:
    """The adapters of ``venue_ids`` (every venue when None) by id, sorted, each built with ``tables(id)``."""
    return {venue_id: get(venue_id, tables(venue_id)) for venue_id in venue_ids or ADAPTERS}
