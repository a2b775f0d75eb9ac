"""Binance USD-M frames in the exact combined-stream format, for tests and benchmarks."""

from __future__ import annotations

import orjson


def agg_trade(symbol: str = "BTCUSDT", agg_id: int = 2541000123, price: str = "101681.4", qty: str = "0.012",
              maker: bool = True, ts: int = 1737975600893) -> str:
    data = {"e": "aggTrade", "E": ts + 1, "a": agg_id, "s": symbol, "p": price, "q": qty,
            "f": agg_id * 3, "l": agg_id * 3 + 2, "T": ts, "m": maker}
    return orjson.dumps({"stream": f"{symbol.lower()}@aggTrade", "data": data}).decode()


def force_order(symbol: str = "BTCUSDT", side: str = "SELL", price: str = "9910", avg: str = "9910",
                qty: str = "0.014", ts: int = 1568014460893) -> str:
    order = {"s": symbol, "S": side, "o": "LIMIT", "f": "IOC", "q": qty, "p": price, "ap": avg, "X": "FILLED",
             "l": qty, "z": qty, "T": ts}
    return orjson.dumps({"stream": "!forceOrder@arr", "data": {"e": "forceOrder", "E": ts, "o": order}}).decode()
