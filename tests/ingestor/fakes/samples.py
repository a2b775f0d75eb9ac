"""Recorded-style frames per venue, in each venue's exact format (built with the fakes' builders).

Used as fuzz seeds and by ``bench.ingest_parse``: a seeded mix of trade frames (1-3 trades each),
liquidation frames and the venue's control frames (acks, pongs), for instruments of the bundled
snapshot so the registry's default adapters (``VENUE``) parse them.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from tests.ingestor.fakes import bitmex, bybit, coinbase, deribit, gate, okx

VENUES = ("bybit", "okx", "bitmex", "deribit", "gate", "coinbase")
BASE_TS = 1_737_972_000_000


def _iso(ts: int) -> str:
    seconds, ms = divmod(ts - BASE_TS, 1000)
    minutes, seconds = divmod(seconds, 60)
    return f"2025-01-27T10:{minutes % 60:02d}:{seconds:02d}.{ms:03d}000Z"


def _bybit(rng: random.Random, i: int) -> str:
    ts = BASE_TS + i
    if i % 50 == 7:
        return bybit.liquidations_frame("BTCUSDT", [bybit.liquidation(ts, "BTCUSDT", rng.choice(("Buy", "Sell")),
                                                                      f"{rng.uniform(0.01, 3):.3f}", "99500.10")])
    rows = [bybit.trade(ts, "BTCUSDT", rng.choice(("Buy", "Sell")), f"{rng.uniform(0.001, 2):.3f}",
                        f"{rng.uniform(99000, 101000):.2f}", f"{i:08d}-d8dd-5b31-9112-a178eb6023a{n}")
            for n in range(1 + i % 3)]
    return bybit.trades_frame("BTCUSDT", rows, ts + 3)


def _okx(rng: random.Random, i: int) -> str:
    ts = BASE_TS + i
    if i % 50 == 7:
        side = rng.choice(("buy", "sell"))
        return okx.liquidations_frame("SWAP", "BTC-USD-SWAP", [okx.detail(side, "net", str(rng.randint(1, 500)),
                                                                          "99123.4", ts)])
    inst = "BTC-USDT-SWAP" if i % 4 else "BTC-USD-SWAP"
    rows = [okx.trade(inst, str(130_000_000 + 3 * i + n), f"{rng.uniform(99000, 101000):.1f}",
                      str(rng.randint(1, 400)), rng.choice(("buy", "sell")), ts) for n in range(1 + i % 3)]
    return okx.trades_frame(inst, rows)


def _bitmex(rng: random.Random, i: int) -> str:
    ts = BASE_TS + i
    if i % 50 == 7:
        return bitmex.table_frame("liquidation", "insert", [bitmex.liquidation(
            f"{i:08d}-815a-f93a-c9a2-ffbbabeddbac", "XBTUSD", rng.choice(("Buy", "Sell")), 99100.5,
            rng.randint(100, 50_000))])
    symbol = "XBTUSD" if i % 3 else "ETHUSD"
    rows = [bitmex.trade(_iso(ts), symbol, rng.choice(("Buy", "Sell")), rng.randint(1, 20_000) * 100,
                         round(rng.uniform(99000, 101000), 1), f"{i:08d}-3bd1-0c6e-b7d6-5b2e0a8d000{n}")
            for n in range(1 + i % 3)]
    return bitmex.table_frame("trade", "insert", rows)


def _deribit(rng: random.Random, i: int) -> str:
    ts = BASE_TS + i
    rows = [deribit.trade("BTC-PERPETUAL", str(316_400_000 + 3 * i + n), 200_000 + 3 * i + n, ts,
                          rng.choice(("buy", "sell")), round(rng.uniform(99000, 101000), 1),
                          float(rng.randint(1, 500) * 10), "T" if i % 50 == 7 and n == 0 else None)
            for n in range(1 + i % 3)]
    return deribit.trades_frame("BTC-PERPETUAL", rows)


def _gate(rng: random.Random, i: int) -> str:
    ts = BASE_TS + i
    if i % 50 == 7:
        return gate.update_frame("futures.public_liquidates", [gate.liquidation(
            "BTC_USDT", rng.choice((-1, 1)) * rng.randint(1, 5000), "99100.2", ts)], ts)
    rows = [gate.trade("BTC_USDT", 27_000_000 + 3 * i + n, rng.choice((-1, 1)) * rng.randint(1, 9000),
                       f"{rng.uniform(99000, 101000):.1f}", ts) for n in range(1 + i % 3)]
    return gate.update_frame("futures.trades", rows, ts)


def _coinbase(rng: random.Random, i: int) -> str:
    return coinbase.match_frame(coinbase.match(700_000_000 + i, "BTC-USD", rng.choice(("buy", "sell")),
                                               f"{rng.uniform(0.0001, 2):.8f}", f"{rng.uniform(99000, 101000):.2f}",
                                               _iso(BASE_TS + i)))


_BUILDERS: dict[str, Callable[[random.Random, int], str]] = {
    "bybit": _bybit, "okx": _okx, "bitmex": _bitmex, "deribit": _deribit, "gate": _gate, "coinbase": _coinbase,
}

CONTROL_FRAMES: dict[str, tuple[str, ...]] = {
    "bybit": ('{"success":true,"ret_msg":"pong","conn_id":"c1","req_id":"","op":"ping"}',
              '{"success":true,"ret_msg":"","conn_id":"c1","req_id":"","op":"subscribe"}'),
    "okx": ("pong", '{"event":"subscribe","arg":{"channel":"trades","instId":"BTC-USDT-SWAP"},"connId":"a4d3ae55"}'),
    "bitmex": ("pong", '{"success":true,"subscribe":"trade:XBTUSD","request":{"op":"subscribe","args":["trade:XBTUSD"]}}'),
    "deribit": ('{"jsonrpc":"2.0","id":9001,"result":{"version":"1.2.26"},"usIn":1,"usOut":2,"usDiff":1,"testnet":false}',
                '{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"heartbeat"}}'),
    "gate": ('{"time":1737972000,"time_ms":1737972000123,"channel":"futures.pong","event":"","result":null}',
             '{"time":1737972000,"channel":"futures.trades","event":"subscribe","error":null,'
             '"result":{"status":"success"}}'),
    "coinbase": ('{"type":"subscriptions","channels":[{"name":"matches","product_ids":["BTC-USD"]}]}',),
}


def recorded_frames(venue: str, count: int, seed: int = 7) -> list[str]:
    """``count`` data frames of ``venue`` with a control frame every 100 frames."""
    rng = random.Random(f"{venue}:{seed}")
    build, control = _BUILDERS[venue], CONTROL_FRAMES[venue]
    return [control[i // 100 % len(control)] if i % 100 == 99 else build(rng, i) for i in range(count)]
