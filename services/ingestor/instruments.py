"""Instrument metadata per venue: the bundled snapshot, and a guarded refresh from public REST.

``data/instruments.json`` is ``{"as_of", "source", "venues": {venue_id: [row, ...]}}`` with rows
``{"symbol", "instrument", "base", "quote", "market", "kind", "contract_size"}`` plus the optional
``price_scale`` (1000-unit contracts) and ``listed`` (false: curated for the scenario universe only).
:func:`load_instruments` reads it once per venue. In live mode :func:`refresh_from_rest` fetches the
venue's exchange-info and merges what it parses over the snapshot; the parsers are pure functions
of the response body (tested on saved response shapes).
"""

from __future__ import annotations

import logging
import re
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

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


def _make(venue: str, symbol: str, venue_base: str, quote: str, market: str, kind: ContractKind,
          contract_size: float = 1.0, expiry_ms: int | None = None) -> Instrument:
    base, scale = split_thousands(venue_base)
    return Instrument(venue=venue, symbol=symbol, instrument=normalized_name(base, quote, market, expiry_ms),
                      base=base, quote=quote, market=market,  # type: ignore[arg-type]
                      kind=kind, contract_size=contract_size * scale, price_scale=scale)


def parse_binance_usdm(body: dict[str, Any]) -> list[Instrument]:
    """``GET https://fapi.binance.com/fapi/v1/exchangeInfo``: perpetuals and dated futures in TRADING."""
    out: list[Instrument] = []
    for item in body.get("symbols", []):
        contract = item.get("contractType")
        if item.get("status") != "TRADING" or contract not in ("PERPETUAL", "CURRENT_QUARTER", "NEXT_QUARTER"):
            continue
        market = "perp" if contract == "PERPETUAL" else "future"
        expiry = int(item.get("deliveryDate", 0)) if market == "future" else None
        out.append(_make("binance-usdm", item["symbol"], item["baseAsset"], item["quoteAsset"], market,
                         "linear", expiry_ms=expiry))
    return out


def parse_bybit(body: dict[str, Any]) -> list[Instrument]:
    """``GET https://api.bybit.com/v5/market/instruments-info?category=linear``."""
    out: list[Instrument] = []
    for item in body.get("result", {}).get("list", []):
        contract = item.get("contractType")
        if item.get("status") != "Trading" or contract not in ("LinearPerpetual", "LinearFutures"):
            continue
        market = "perp" if contract == "LinearPerpetual" else "future"
        expiry = int(item.get("deliveryTime") or 0) if market == "future" else None
        out.append(_make("bybit", item["symbol"], item["baseCoin"], item["quoteCoin"], market, "linear",
                         expiry_ms=expiry))
    return out


def parse_okx(body: dict[str, Any]) -> list[Instrument]:
    """``GET https://www.okx.com/api/v5/public/instruments?instType=SWAP`` (and FUTURES)."""
    out: list[Instrument] = []
    for item in body.get("data", []):
        if item.get("state") != "live":
            continue
        market = "perp" if item.get("instType") == "SWAP" else "future"
        base, quote = str(item.get("uly", item["instId"])).split("-")[:2]
        kind: ContractKind = "inverse" if item.get("ctType") == "inverse" else "linear"
        expiry = int(item.get("expTime") or 0) if market == "future" else None
        out.append(_make("okx", item["instId"], base, quote, market, kind, float(item["ctVal"]), expiry))
    return out


RestParser = Callable[[dict[str, Any]], list[Instrument]]

REST_SOURCES: dict[str, tuple[tuple[str, ...], RestParser]] = {
    "binance-usdm": (("https://fapi.binance.com/fapi/v1/exchangeInfo",), parse_binance_usdm),
    "bybit": (("https://api.bybit.com/v5/market/instruments-info?category=linear&limit=1000",), parse_bybit),
    "okx": (("https://www.okx.com/api/v5/public/instruments?instType=SWAP",
             "https://www.okx.com/api/v5/public/instruments?instType=FUTURES"), parse_okx),
}


def _adapter_rest_source(venue_id: str) -> tuple[tuple[str, ...], RestParser] | None:
    """Adapters that carry their own instrument endpoints (gate, deribit, bitmex, coinbase)."""
    from services.ingestor.venues import registry  # lazy: the adapters import this module

    adapter = registry.venues().get(venue_id)
    urls = tuple(getattr(adapter, "rest_instrument_urls", ()))
    parser = getattr(adapter, "parse_rest_instruments", None)
    return (urls, parser) if urls and parser else None


def _fetch_json(url: str, timeout: float) -> dict[str, Any]:
    request = urllib.request.Request(url, headers={"User-Agent": "cryptopulse"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (fixed https URLs)
        data: dict[str, Any] = orjson.loads(response.read())
    return data


def refresh_from_rest(venue_id: str, timeout: float = 10.0,
                      fetch: Callable[[str, float], dict[str, Any]] = _fetch_json) -> int:
    """Merge the venue's live instrument list over the snapshot; returns how many were parsed.

    Guarded: any network or format failure is logged and the snapshot stays in use (returns 0).
    """
    source = REST_SOURCES.get(venue_id) or _adapter_rest_source(venue_id)
    if source is None:
        return 0
    urls, parser = source
    try:
        parsed = [inst for url in urls for inst in parser(fetch(url, timeout))]
    except Exception as exc:  # network errors, HTTP errors, unexpected shapes: keep the snapshot
        log.warning("instrument refresh for %s failed (%s); using the %s snapshot",
                    venue_id, exc, snapshot_as_of())
        return 0
    merged = dict(_load_snapshot(venue_id))
    merged.update((inst.symbol, inst) for inst in parsed)
    _refreshed[venue_id] = merged
    log.info("instrument refresh for %s: %d instruments from REST", venue_id, len(parsed))
    return len(parsed)
