"""Fake kline REST servers for Binance USD-M, Bybit and OKX, each with its documented paging:

- Binance ``/fapi/v1/klines``: ``startTime``/``endTime`` inclusive, ``limit`` <= 1500 (else
  HTTP 400 code -1130), oldest first, the first ``limit`` rows; unknown symbol: 400 code -1121.
- Bybit ``/v5/market/kline``: ``start``/``end`` inclusive, ``limit`` <= 1000 (else retCode 10001),
  newest first, the newest ``limit`` rows, wrapped in ``{"retCode":0,"result":{"list":[...]}}``.
- OKX ``/api/v5/market/history-candles``: ``after`` (older than) / ``before`` (newer than), both
  exclusive, ``limit`` <= 100 (else code 51000), newest first, the newest ``limit`` rows, each with
  ``confirm`` "0" while forming; ``bar`` 1m/1H/1Dutc.

Prices follow :func:`price` (deterministic, per venue-native symbol), so a test can recompute every
candle; rows exist from ``listed_from`` to the fake's clock ``now`` (the last one forming).
"""

from __future__ import annotations

import math
import time

from tests.live.fakerest import Answer, FakeRest, json_answer

MINUTE = 60_000
STEPS = {"binance": {"1m": MINUTE, "1h": 60 * MINUTE, "1d": 1440 * MINUTE},
         "bybit": {"1": MINUTE, "60": 60 * MINUTE, "D": 1440 * MINUTE},
         "okx": {"1m": MINUTE, "1H": 60 * MINUTE, "1Dutc": 1440 * MINUTE}}


def price(symbol: str, t: int) -> float:
    """The fake market's price of ``symbol`` (venue units) at time ``t``: a smooth deterministic wave."""
    seed = sum(ord(c) for c in symbol)
    base = 1.0 + seed % 97
    return base * math.exp(0.2 * math.sin(t / 8.64e8 / 7 + seed) + 0.01 * math.sin(t / 3.6e6 + seed))


def ohlc(symbol: str, t: int, step: int) -> tuple[float, float, float, float]:
    o, c = price(symbol, t), price(symbol, t + step)
    return o, max(o, c) * 1.001, min(o, c) * 0.999, c


class FakeKlines(FakeRest):
    def __init__(self, venue: str, symbols: dict[str, float], now: int | None, listed_from: int = 0) -> None:
        """``symbols``: venue-native symbol -> contract size (OKX sizes count contracts); ``now``:
        the fake's clock (None: the wall clock)."""
        super().__init__()
        self.venue = venue
        self.symbols = symbols
        self.fixed_now = now
        self.listed_from = listed_from
        path = {"binance": "/fapi/v1/klines", "bybit": "/v5/market/kline",
                "okx": "/api/v5/market/history-candles"}[venue]
        self.path = path
        self.route(path, getattr(self, f"_{venue}"))

    @property
    def now(self) -> int:
        return self.fixed_now if self.fixed_now is not None else time.time_ns() // 1_000_000

    def _rows(self, symbol: str, step: int, first: int, last: int) -> list[tuple[int, bool]]:
        """(open time, closed) of every row with ``first <= open <= last`` that exists."""
        start = max(first, self.listed_from)
        start += -start % step
        return [(t, t + step <= self.now) for t in range(start, min(last, self.now) + 1, step)]

    def _binance(self, q: dict[str, str]) -> Answer:
        if q.get("symbol") not in self.symbols:
            return json_answer({"code": -1121, "msg": "Invalid symbol."}, 400)
        limit = int(q.get("limit", 500))
        if not 1 <= limit <= 1500:
            return json_answer({"code": -1130, "msg": "Data sent for parameter 'limit' is not valid."}, 400)
        step = STEPS["binance"][q["interval"]]
        rows = self._rows(q["symbol"], step, int(q.get("startTime", 0)), int(q.get("endTime", self.now)))[:limit]
        out = []
        for t, _closed in rows:
            o, h, low, c = ohlc(q["symbol"], t, step)
            quote = 1000.0 * step / MINUTE
            out.append([t, str(o), str(h), str(low), str(c), str(quote / c), t + step - 1, str(quote), 10,
                        str(quote / c / 2), str(quote / 2), "0"])
        return json_answer(out)

    def _bybit(self, q: dict[str, str]) -> Answer:
        limit = int(q.get("limit", 200))
        if q.get("category") != "linear" or not 1 <= limit <= 1000:
            return json_answer({"retCode": 10001, "retMsg": "params error", "result": {}, "retExtInfo": {}, "time": self.now})
        if q.get("symbol") not in self.symbols:
            return json_answer({"retCode": 10001, "retMsg": "Not supported symbols", "result": {}, "retExtInfo": {},
                                "time": self.now})
        step = STEPS["bybit"][q["interval"]]
        rows = self._rows(q["symbol"], step, int(q.get("start", 0)), int(q.get("end", self.now)))[-limit:]
        out = []
        for t, _closed in reversed(rows):
            o, h, low, c = ohlc(q["symbol"], t, step)
            quote = 1000.0 * step / MINUTE
            out.append([str(t), str(o), str(h), str(low), str(c), str(quote / c), str(quote)])
        return json_answer({"retCode": 0, "retMsg": "OK", "result": {"symbol": q["symbol"], "category": "linear",
                                                                     "list": out}, "retExtInfo": {}, "time": self.now})

    def _okx(self, q: dict[str, str]) -> Answer:
        limit = int(q.get("limit", 100))
        if not 1 <= limit <= 100:
            return json_answer({"code": "51000", "msg": "Parameter limit error", "data": []})
        if q.get("instId") not in self.symbols:
            return json_answer({"code": "51001", "msg": "Instrument ID does not exist", "data": []})
        step = STEPS["okx"][q["bar"]]
        after = int(q.get("after", self.now + step))
        before = int(q.get("before", -1))
        rows = self._rows(q["instId"], step, before + 1, after - 1)[-limit:]
        out = []
        for t, closed in reversed(rows):
            o, h, low, c = ohlc(q["instId"], t, step)
            quote = 1000.0 * step / MINUTE
            out.append([str(t), str(o), str(h), str(low), str(c), str(quote / c / self.symbols[q["instId"]]), str(quote / c), str(quote),
                        "1" if closed else "0"])
        return json_answer({"code": "0", "msg": "", "data": out})
