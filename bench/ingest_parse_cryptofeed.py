"""Child of ``bench.ingest_parse``: cryptofeed's own normalization of the same frames, offline.

Runs under a separate interpreter with cryptofeed installed (``CRYPTOFEED_PYTHON``); imports
nothing from this project. Each exchange's feed object is made without its constructor (which
fetches symbol lists over the network), given the symbol maps of the frames, and every frame is
passed to its ``message_handler`` exactly as its websocket connection would. Prints one JSON line
``{venue: frames_per_second | reason}``.

    python bench/ingest_parse_cryptofeed.py FRAMES.json REPEAT
"""

from __future__ import annotations

import asyncio
import gc
import gzip
import json
import logging
import sys
import time
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

SYMBOLS = {
    "bybit": ("Bybit", {"BTCUSDT": "BTC-USDT-PERP"}, "wss://stream.bybit.com/v5/public/linear"),
    "okx": ("OKX", {"BTC-USDT-SWAP": "BTC-USDT-PERP", "BTC-USD-SWAP": "BTC-USD-PERP"}, "wss://ws.okx.com:8443/ws/v5/public"),
    "bitmex": ("Bitmex", {"XBTUSD": "BTC-USD-PERP", "ETHUSD": "ETH-USD-PERP"}, "wss://ws.bitmex.com/realtime"),
    "deribit": ("Deribit", {"BTC-PERPETUAL": "BTC-USD-PERP"}, "wss://www.deribit.com/ws/api/v2"),
    "gate": ("GateioFutures", {"BTC_USDT": "BTC-USDT-PERP"}, "wss://fx-ws.gateio.ws/v4/ws/usdt"),
    "binance-usdm": ("BinanceFutures", {"BTCUSDT": "BTC-USDT-PERP", "ETHUSDT": "ETH-USDT-PERP"},
                     "wss://fstream.binance.com"),
    "binance-coinm": ("BinanceDelivery", {"BTCUSD_PERP": "BTC-USD-PERP", "ETHUSD_PERP": "ETH-USD-PERP"},
                      "wss://dstream.binance.com"),
    "kraken-futures": ("KrakenFutures", {"pf_xbtusd": "BTC-USD-PERP"}, "wss://futures.kraken.com/ws/v1"),
    "htx": ("HuobiSwap", {"BTC-USDT": "BTC-USDT-PERP"}, "wss://api.hbdm.com/linear-swap-ws"),
}
GZIP = frozenset(("htx",))     # venues whose frames arrive gzip-compressed: handed over as the venue sends them
UNSUPPORTED = {"coinbase": "n/a: cryptofeed 2.4 speaks Advanced Trade only",
               "hyperliquid": "n/a: no Hyperliquid feed in cryptofeed 2.4"}


def offline_feed(class_name: str, symbols: dict[str, str], counter: list[int],
                 callbacks: dict[str, list[Any]] | None = None) -> Any:
    """A feed object of ``class_name`` that needs no network; ``callbacks`` (default: counting ones)
    receive its normalized trades and liquidations."""
    import cryptofeed.exchanges as exchanges
    from cryptofeed.defines import LIQUIDATIONS, TRADES

    cls = getattr(exchanges, class_name)
    feed = cls.__new__(cls)
    feed.exchange_symbol_mapping = dict(symbols)
    feed.normalized_symbol_mapping = {std: venue for venue, std in symbols.items()}
    feed.ignore_invalid_instruments = True
    feed.requires_authentication = False     # public market data only (Binance checks it per message)

    async def count(obj: Any, receipt_timestamp: float) -> None:
        counter[0] += 1

    feed.callbacks = defaultdict(list, callbacks or {TRADES: [count], LIQUIDATIONS: [count]})
    return feed


CHUNK = 500


async def drive(feed: Any, frames: list[str], conn: Any, repeat: int, failures: list[int]) -> float:
    """Seconds to handle every frame: per ``CHUNK``-frame chunk the fastest of ``repeat`` rounds (as
    the parent times the adapters). Frames cryptofeed fails on (e.g. OKX liquidation-orders, which
    it routes to its private orders handler) are counted in ``failures``, not fatal."""
    handler, clock = feed.message_handler, time.perf_counter
    chunks = [frames[i:i + CHUNK] for i in range(0, len(frames), CHUNK)]
    best = [float("inf")] * len(chunks)
    gc.collect()
    for _ in range(repeat):
        for index, chunk in enumerate(chunks):
            start = clock()
            for frame in chunk:
                try:
                    await handler(frame, conn, 1737972001.0)
                except Exception:
                    failures[0] += 1
            best[index] = min(best[index], clock() - start)
    return sum(best)


def main() -> None:
    logging.disable(logging.CRITICAL)    # cryptofeed logs every unhandled frame; not part of the work
    with open(sys.argv[1], encoding="utf-8") as source:
        frames_by_venue: dict[str, list[str]] = json.load(source)
    repeat = int(sys.argv[2])
    out: dict[str, Any] = dict(UNSUPPORTED)
    for venue, (class_name, symbols, address) in SYMBOLS.items():
        frames = frames_by_venue.get(venue)
        if not frames:
            continue
        if venue in GZIP:
            frames = [gzip.compress(frame.encode(), mtime=0) for frame in frames]
        counter, failures = [0], [0]
        try:
            feed = offline_feed(class_name, symbols, counter)
            conn = SimpleNamespace(address=address, uuid=f"{venue}-bench")
            seconds = asyncio.run(drive(feed, frames, conn, repeat, failures))
        except Exception as exc:  # report, do not hide: a venue cryptofeed cannot drive offline
            out[venue] = f"error: {type(exc).__name__}: {exc}"[:60]
            continue
        out[venue] = len(frames) / seconds
        out[f"{venue}:events"] = counter[0] // repeat
        out[f"{venue}:failed_frames"] = failures[0] // repeat
    print(json.dumps(out))


if __name__ == "__main__":
    main()
