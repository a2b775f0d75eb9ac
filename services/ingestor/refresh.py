"""The live instrument refresh: fetch a venue's public REST instrument endpoints, parse them with
the venue module's own parser, and use the result over the bundled snapshot (guarded: any failure
keeps the snapshot). The network part lives here, apart from :mod:`.instruments` (the tables the
callers hand to the adapters).
"""

from __future__ import annotations

import logging
import urllib.request
from collections.abc import Callable
from typing import Any, Protocol

import orjson

from services.ingestor.instruments import merge_refreshed, snapshot_as_of
from services.ingestor.venues.base import Instrument

log = logging.getLogger("cryptopulse.ingestor.instruments")


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
    merge_refreshed(venue_id, parsed)
    log.info("instrument refresh for %s: %d instruments from REST", venue_id, len(parsed))
    return len(parsed)
