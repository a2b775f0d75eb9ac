"""The venues' kline endpoints (pure): request for a time window, parse of the answer.

Every request asks for one *window* of at most ``max_limit`` intervals, ``[start, end)``, so
paging is the same whatever order a venue returns its rows in (Binance oldest first, Bybit and OKX
newest first): the caller walks the windows forward and each answer is complete by construction.
Only closed klines are returned (a row whose interval has not ended at ``now`` is dropped).

- Binance USD-M ``GET /fapi/v1/klines?symbol&interval&startTime&endTime&limit`` (limit <= 1500;
  weight 1/2/5/10 for limit < 100 / < 500 / <= 1000 / > 1000; 2400 weight per minute per IP;
  429 then 418 (ban) with ``Retry-After``). Row: ``[openTime, o, h, l, c, volume, closeTime,
  quoteVolume, trades, takerBuyBase, takerBuyQuote, ignore]``.
- Bybit ``GET /v5/market/kline?category=linear&symbol&interval=1|60|D&start&end&limit`` (limit
  <= 1000; 600 requests per 5 s per IP, HTTP 403 when exceeded; ``retCode`` 10006 = too many
  visits). Rows newest first: ``[startTime, o, h, l, c, volume, turnover]``.
- OKX ``GET /api/v5/market/history-candles?instId&bar=1m|1H|1Dutc&after&before&limit`` (limit <=
  100; 20 requests per 2 s; ``after`` = rows older than, ``before`` = rows newer than, both
  exclusive; ``1Dutc`` = UTC days). Rows newest first: ``[ts, o, h, l, c, vol, volCcy,
  volCcyQuote, confirm]``; ``code`` != "0" is an error (50011 = rate limit).
"""

from __future__ import annotations

import math
import urllib.parse
from dataclasses import dataclass
from typing import Any

from services.common.clock import DAY_MS, HOUR_MS, MINUTE_MS
from services.common.http import MalformedResponse

INTERVAL_MS = {"1m": MINUTE_MS, "1h": HOUR_MS, "1d": DAY_MS}


class VenueRefusal(MalformedResponse):
    """A well-formed answer that reports an error (``retCode``/``code``); ``retryable`` for rate limits."""

    def __init__(self, url: str, reason: str, retryable: bool) -> None:
        super().__init__(url, reason)
        self.retryable = retryable


@dataclass(frozen=True, slots=True)
class Kline:
    """One closed kline in the venue's units (prices per the venue's price unit, size per its size unit)."""

    open_time: int
    open: float
    high: float
    low: float
    close: float
    volume: float               # venue size units (contracts for OKX, base or 1000-base otherwise)
    quote_volume: float         # quote currency (USDT/USDC): the USD notional
    trades: int | None = None
    taker_buy_quote: float | None = None


def _num(url: str, row: list[Any], i: int) -> float:
    try:
        value = float(row[i])
    except (IndexError, TypeError, ValueError):
        raise MalformedResponse(url, f"kline row {row!r:.120}: field {i} is not a number") from None
    if not math.isfinite(value):
        raise MalformedResponse(url, f"kline row {row!r:.120}: field {i} is not finite")
    return value


def _rows(url: str, rows: Any) -> list[list[Any]]:
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise MalformedResponse(url, f"expected a list of kline arrays, got {str(rows)[:120]!r}")
    return rows


def _kline(url: str, row: list[Any], volume_i: int, quote_i: int) -> Kline:
    """One row, checked: numbers, finite, low <= open, close <= high, volumes >= 0 (hot: one try)."""
    try:
        t, o, h, low, c = int(row[0]), float(row[1]), float(row[2]), float(row[3]), float(row[4])
        volume, quote = float(row[volume_i]), float(row[quote_i])
    except (IndexError, TypeError, ValueError):
        bad = next((i for i in (1, 2, 3, 4, volume_i, quote_i) if not _is_number(row, i)), 0)
        raise MalformedResponse(url, f"kline row {row!r:.120}: field {bad} is not a number") from None
    if not math.isfinite(h + volume + quote) or volume < 0 or quote < 0:
        raise MalformedResponse(url, f"kline row {row!r:.120}: not finite or negative")
    if not (0 < low <= o <= h and low <= c <= h):
        raise MalformedResponse(url, f"kline row {row!r:.120}: OHLC inconsistent")
    return Kline(t, o, h, low, c, volume, quote)


def _is_number(row: list[Any], i: int) -> bool:
    try:
        float(row[i])
    except (IndexError, TypeError, ValueError):
        return False
    return True


@dataclass(frozen=True)
class KlineApi:
    venue: str
    path: str
    max_limit: int
    intervals: dict[str, str]

    def window(self, start: int, interval: str) -> int:
        """End (exclusive) of the window that starts at ``start``."""
        return start + self.max_limit * INTERVAL_MS[interval]

    def url(self, root: str, symbol: str, interval: str, start: int, end: int) -> str:
        raise NotImplementedError

    def weight(self, start: int, end: int, interval: str) -> float:
        return 1.0

    def parse(self, url: str, body: Any) -> list[Kline]:
        raise NotImplementedError

    def closed(self, klines: list[Kline], interval: str, start: int, end: int, now: int) -> list[Kline]:
        """The rows inside ``[start, end)`` whose interval has ended at ``now``, oldest first, once each."""
        step = INTERVAL_MS[interval]
        seen: dict[int, Kline] = {}
        for k in klines:
            if start <= k.open_time < end and k.open_time + step <= now and k.open_time % step == 0:
                seen[k.open_time] = k
        return [seen[t] for t in sorted(seen)]


class BinanceKlines(KlineApi):
    def url(self, root: str, symbol: str, interval: str, start: int, end: int) -> str:
        limit = (end - start) // INTERVAL_MS[interval]
        query = {"symbol": symbol, "interval": self.intervals[interval], "startTime": start,
                 "endTime": end - 1, "limit": limit}
        return f"{root}{self.path}?{urllib.parse.urlencode(query)}"

    def weight(self, start: int, end: int, interval: str) -> float:
        limit = (end - start) // INTERVAL_MS[interval]
        return 1.0 if limit < 100 else 2.0 if limit < 500 else 5.0 if limit <= 1000 else 10.0

    def parse(self, url: str, body: Any) -> list[Kline]:
        if isinstance(body, dict) and "code" in body:
            raise VenueRefusal(url, f"binance error {body.get('code')}: {body.get('msg')}", retryable=False)
        out = []
        for row in _rows(url, body):
            k = _kline(url, row, 5, 7)
            out.append(Kline(k.open_time, k.open, k.high, k.low, k.close, k.volume, k.quote_volume,
                             int(_num(url, row, 8)), _num(url, row, 10)))
        return out


class BybitKlines(KlineApi):
    def url(self, root: str, symbol: str, interval: str, start: int, end: int) -> str:
        limit = (end - start) // INTERVAL_MS[interval]
        query = {"category": "linear", "symbol": symbol, "interval": self.intervals[interval], "start": start,
                 "end": end - 1, "limit": limit}
        return f"{root}{self.path}?{urllib.parse.urlencode(query)}"

    def parse(self, url: str, body: Any) -> list[Kline]:
        if not isinstance(body, dict) or "retCode" not in body:
            raise MalformedResponse(url, "expected an object with retCode")
        if body["retCode"] != 0:
            raise VenueRefusal(url, f"bybit retCode {body['retCode']}: {body.get('retMsg')}",
                               retryable=body["retCode"] in (10006, 10018))
        result = body.get("result")
        return [_kline(url, row, 5, 6) for row in _rows(url, result.get("list") if isinstance(result, dict) else None)]


class OkxKlines(KlineApi):
    def url(self, root: str, symbol: str, interval: str, start: int, end: int) -> str:
        limit = (end - start) // INTERVAL_MS[interval]
        query = {"instId": symbol, "bar": self.intervals[interval], "after": end, "before": start - 1, "limit": limit}
        return f"{root}{self.path}?{urllib.parse.urlencode(query)}"

    def parse(self, url: str, body: Any) -> list[Kline]:
        if not isinstance(body, dict) or "code" not in body:
            raise MalformedResponse(url, "expected an object with code")
        if str(body["code"]) != "0":
            raise VenueRefusal(url, f"okx code {body['code']}: {body.get('msg')}", retryable=str(body["code"]) == "50011")
        out = []
        for row in _rows(url, body.get("data")):
            if len(row) > 8 and str(row[8]) == "0":
                continue                      # confirm = 0: the candle is still forming
            out.append(_kline(url, row, 5, 7))
        return out


APIS: dict[str, KlineApi] = {
    "binance-usdm": BinanceKlines("binance-usdm", "/fapi/v1/klines", 1500, {"1m": "1m", "1h": "1h", "1d": "1d"}),
    "bybit": BybitKlines("bybit", "/v5/market/kline", 1000, {"1m": "1", "1h": "60", "1d": "D"}),
    "okx": OkxKlines("okx", "/api/v5/market/history-candles", 100, {"1m": "1m", "1h": "1H", "1d": "1Dutc"}),
}

