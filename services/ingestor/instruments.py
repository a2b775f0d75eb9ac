"""Instrument metadata per venue: the bundled snapshot, and a guarded refresh from public REST.

``data/instruments.json`` is ``{"as_of", "source", "venues": {venue_id: [row, ...]}}`` with rows
``{"symbol", "instrument", "base", "quote", "market", "kind", "contract_size"}`` plus the optional
``price_scale`` (1000-unit contracts) and ``listed`` (false: curated for the scenario universe only).
:func:`load_instruments` reads it once per venue. In live mode :func:`refresh_from_rest` fetches the
venue's instrument endpoints and merges what the venue module's parser (a pure function of the
response body, tested on saved response shapes) returns over the snapshot. Each venue module owns
its endpoints and parser; this module only holds the snapshot and the guarded refresh.
"""

from __future__ import annotations

import logging
import re
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import orjson

from services.ingestor.venues.base import ContractKind, Instrument

log = logging.getLogger("cryptopulse.ingestor.instruments")

SNAPSHOT = Path(__file__).resolve().parent / "data" / "instruments.json"

_KINDS = frozenset(("spot", "linear", "inverse", "quanto"))
_MARKETS = frozenset(("spot", "perp", "future"))
_THOUSAND_PREFIX = re.compile(r"^(1000+)([A-Z0-9]+)$")
_THOUSAND_SUFFIX = re.compile(r"^([A-Z][A-Z0-9]*?)(1000+)$")

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


def normalized_name(base: str, quote: str, market: str, expiry_ms: int | None = None) -> str:
    """``BASE-QUOTE-PERP`` | ``BASE-QUOTE-YYMMDD`` | ``BASE-QUOTE``."""
    if market == "perp":
        return f"{base}-{quote}-PERP"
    if market == "future" and expiry_ms:
        return f"{base}-{quote}-{datetime.fromtimestamp(expiry_ms / 1000, UTC):%y%m%d}"
    return f"{base}-{quote}"


def split_thousands(venue_base: str) -> tuple[str, float]:
    """``1000PEPE`` -> (``PEPE``, 1000.0); ``SHIB1000`` -> (``SHIB``, 1000.0); ``BTC`` -> (``BTC``, 1.0)."""
    for pattern, base_group, scale_group in ((_THOUSAND_PREFIX, 2, 1), (_THOUSAND_SUFFIX, 1, 2)):
        match = pattern.match(venue_base)
        if match:
            return match.group(base_group), float(match.group(scale_group))
    return venue_base, 1.0


def make_instrument(venue: str, symbol: str, venue_base: str, quote: str, market: str, kind: ContractKind,
                    contract_size: float = 1.0, expiry_ms: int | None = None) -> Instrument:
    """An instrument from a venue's REST fields: thousand-unit bases (``1000PEPE``) become a price
    scale and contract multiplier, the name is normalized."""
    base, scale = split_thousands(venue_base)
    return Instrument(venue=venue, symbol=symbol, instrument=normalized_name(base, quote, market, expiry_ms),
                      base=base, quote=quote, market=market,  # type: ignore[arg-type]
                      kind=kind, contract_size=contract_size * scale, price_scale=scale)


class RestSource(Protocol):
    """What a venue module offers for the live refresh: its REST instrument endpoints and the pure
    parser of one response body (every venue adapter has both; see ``venues/base.py``)."""

    @property
    def id(self) -> str: ...

    @property
    def rest_instrument_urls(self) -> tuple[str, ...]: ...

    def parse_rest_instruments(self, body: Any) -> list[Instrument]: ...


def _fetch_json(url: str, timeout: float, body: bytes | None = None) -> Any:
    """GET ``url`` (POST of the JSON ``body`` when given) and decode the JSON answer."""
    request = urllib.request.Request(url, data=body, headers={"User-Agent": "cryptopulse",
                                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (fixed https URLs)
        return orjson.loads(response.read())


def refresh_from_rest(venue: RestSource, timeout: float = 10.0, fetch: Callable[..., Any] = _fetch_json) -> int:
    """Merge the venue's live instrument list over the snapshot; returns how many were parsed.

    ``fetch(url, timeout)`` (``fetch(url, timeout, body)`` for venues whose instrument endpoint is
    a POST of ``rest_instrument_body``, as Hyperliquid's ``/info``). Guarded: any network or
    format failure is logged and the snapshot stays in use (returns 0).
    """
    venue_id, urls = venue.id, venue.rest_instrument_urls
    body: bytes | None = getattr(venue, "rest_instrument_body", None)
    if not urls:
        return 0
    try:
        bodies = [fetch(url, timeout, body) if body is not None else fetch(url, timeout) for url in urls]
        parsed = [inst for answer in bodies for inst in venue.parse_rest_instruments(answer)]
    except Exception as exc:  # network errors, HTTP errors, unexpected shapes: keep the snapshot
        log.warning("instrument refresh for %s failed (%s); using the %s snapshot",
                    venue_id, exc, snapshot_as_of())
        return 0
    merged = dict(_load_snapshot(venue_id))
    merged.update((inst.symbol, inst) for inst in parsed)
    _refreshed[venue_id] = merged
    log.info("instrument refresh for %s: %d instruments from REST", venue_id, len(parsed))
    return len(parsed)
