"""CoinGecko as the reference provider: ``GET /coins/markets`` (overall and per category), ``/global``.

Documented limits: keyless ~5-15 calls/min (varies with traffic), demo key 30/min (header
``x-cg-demo-api-key``), paid plans 250+/min on ``pro-api.coingecko.com`` (header
``x-cg-pro-api-key``); ``per_page`` is at most 250. A 429 is waited out (``Retry-After`` when
sent), 5xx backs off; the parsers below are pure functions of the response body.
"""

from __future__ import annotations

import math
import urllib.parse
from typing import Any

from services.common.http import DEFAULT_POLICY, MalformedResponse, RetryPolicy, get_json
from services.reference.market import MarketEntry

PER_PAGE_MAX = 250


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def parse_entry(item: Any) -> MarketEntry | None:
    """One row of ``/coins/markets``, or None when it lacks a symbol, a supply or a cap."""
    if not isinstance(item, dict):
        return None
    symbol, name = item.get("symbol"), item.get("name")
    supply, cap = _number(item.get("circulating_supply")), _number(item.get("market_cap"))
    if not isinstance(symbol, str) or not symbol.strip() or not symbol.strip().isalnum():
        return None
    if supply is None or supply <= 0 or cap is None or cap <= 0:
        return None
    return MarketEntry(symbol=symbol.strip().upper(), name=name if isinstance(name, str) and name else symbol.upper(),
                       circulating_supply=supply, market_cap=cap, provider_id=str(item.get("id", "")))


def parse_markets(url: str, body: Any) -> tuple[list[MarketEntry], int]:
    """(usable rows in the provider's order, rows skipped); a body that is not a list is an error."""
    if not isinstance(body, list):
        detail = body.get("error") or body.get("status") if isinstance(body, dict) else type(body).__name__
        raise MalformedResponse(url, f"expected a JSON array of coins, got {str(detail)[:200]!r}")
    entries = [e for e in (parse_entry(item) for item in body) if e is not None]
    return entries, len(body) - len(entries)


def parse_global(url: str, body: Any) -> float:
    data = body.get("data") if isinstance(body, dict) else None
    caps = data.get("total_market_cap") if isinstance(data, dict) else None
    usd = _number(caps.get("usd")) if isinstance(caps, dict) else None
    if usd is None or usd <= 0:
        raise MalformedResponse(url, "expected data.total_market_cap.usd > 0")
    return usd


class CoinGecko:
    """Blocking client (the async shell runs it in a thread, one request at a time, throttled)."""

    name = "coingecko"

    def __init__(self, root: str, api_key: str | None = None, policy: RetryPolicy = DEFAULT_POLICY,
                 pace: Any = None) -> None:
        self.root = root.rstrip("/")
        header = "x-cg-pro-api-key" if "pro-api." in self.root else "x-cg-demo-api-key"
        self.headers = {header: api_key} if api_key else {}
        self.policy = policy
        self.pace = pace          # callable run before each request (blocking throttle), or None
        self.skipped = 0
        self.requests = 0

    def _get(self, path: str, params: dict[str, Any]) -> tuple[str, Any]:
        url = f"{self.root}{path}?{urllib.parse.urlencode(params)}"
        if self.pace is not None:
            self.pace()
        self.requests += 1
        return url, get_json(url, self.headers, self.policy)

    def _markets(self, count: int, category: str | None) -> list[MarketEntry]:
        out: list[MarketEntry] = []
        page = 1
        while len(out) < count:
            params: dict[str, Any] = {"vs_currency": "usd", "order": "market_cap_desc",
                                      "per_page": PER_PAGE_MAX, "page": page, "sparkline": "false"}
            if category:
                params["category"] = category
            url, body = self._get("/coins/markets", params)
            entries, skipped = parse_markets(url, body)
            self.skipped += skipped
            out.extend(entries)
            if len(body) < PER_PAGE_MAX:
                break
            page += 1
        return out[:count]

    def top(self, n: int) -> list[MarketEntry]:
        return self._markets(n, None)

    def category(self, category_id: str, limit: int) -> list[MarketEntry]:
        return self._markets(limit, category_id)

    def global_market_cap(self) -> float | None:
        url, body = self._get("/global", {})
        return parse_global(url, body)
