"""Binance COIN-M frames in the exact combined-stream format (``wss://dstream.binance.com``).

The protocol is Binance's combined stream, served by :class:`tests.ingestor.fakes.binance_usdm.
FakeBinance` (streams from the URL, ``{"stream","data"}`` envelope, server pings); only the
instruments and the size unit differ: ``q``/``z`` are contracts (100 USD for BTC, 10 USD else).
The forceOrder example is Binance's documented COIN-M one.
"""

from __future__ import annotations

from tests.ingestor.fakes.exchange import dump

DOC_FORCE_ORDER = {"e": "forceOrder", "E": 1568014460893, "o": {
    "s": "BTCUSD_200925", "ps": "BTCUSD", "S": "SELL", "o": "LIMIT", "f": "IOC", "q": "1", "p": "9425.5",
    "ap": "9496.5", "X": "FILLED", "l": "1", "z": "1", "T": 1591154240949}}


def agg_trade(symbol: str, agg_id: int, price: str, contracts: str, maker: bool, ts: int) -> str:
    data = {"e": "aggTrade", "E": ts + 2, "a": agg_id, "s": symbol, "p": price, "q": contracts,
            "f": agg_id * 4, "l": agg_id * 4 + 1, "T": ts, "m": maker}
    return dump({"stream": f"{symbol.lower()}@aggTrade", "data": data})


def force_order(symbol: str, side: str, price: str, avg: str, contracts: str, ts: int) -> str:
    order = {"s": symbol, "ps": symbol.split("_")[0], "S": side, "o": "LIMIT", "f": "IOC", "q": contracts,
             "p": price, "ap": avg, "X": "FILLED", "l": contracts, "z": contracts, "T": ts}
    return dump({"stream": "!forceOrder@arr", "data": {"e": "forceOrder", "E": ts + 1, "o": order}})
