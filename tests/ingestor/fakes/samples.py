"""Recorded-style frames per venue, in each venue's exact format (built with the fakes' builders).

Used as fuzz seeds and by ``bench.ingest_parse``: a seeded mix of trade frames (1-3 trades each
where the venue batches them),
liquidation frames and the venue's control frames (acks, pongs), for instruments of the bundled
snapshot so the registry's default adapters (``VENUE``) parse them.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime

from tests.ingestor import frames as binance_usdm
from tests.ingestor.fakes import (
    binance_coinm,
    bitmex,
    bybit,
    coinbase,
    deribit,
    gate,
    htx,
    hyperliquid,
    kraken_futures,
    okx,
)

VENUES = ("binance-usdm", "bybit", "okx", "bitmex", "deribit", "gate", "coinbase", "binance-coinm", "kraken-futures",
          "htx", "hyperliquid")
BASE_TS = 1_737_972_000_000


def _iso(ts: int) -> str:
    moment = datetime.fromtimestamp(ts / 1000, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ts % 1000:03d}000Z"


def _bybit(rng: random.Random, i: int, t0: int = BASE_TS) -> str:
    ts = t0 + i
    if i % 50 == 7:
        return bybit.liquidations_frame("BTCUSDT", [bybit.liquidation(ts, "BTCUSDT", rng.choice(("Buy", "Sell")),
                                                                      f"{rng.uniform(0.01, 3):.3f}", "99500.10")])
    rows = [bybit.trade(ts, "BTCUSDT", rng.choice(("Buy", "Sell")), f"{rng.uniform(0.001, 2):.3f}",
                        f"{rng.uniform(99000, 101000):.2f}", f"{i:08d}-d8dd-5b31-9112-a178eb6023a{n}")
            for n in range(1 + i % 3)]
    return bybit.trades_frame("BTCUSDT", rows, ts + 3)


def _okx(rng: random.Random, i: int, t0: int = BASE_TS) -> str:
    ts = t0 + i
    if i % 50 == 7:
        side = rng.choice(("buy", "sell"))
        return okx.liquidations_frame("SWAP", "BTC-USD-SWAP", [okx.detail(side, "net", str(rng.randint(1, 500)),
                                                                          "99123.4", ts)])
    inst = "BTC-USDT-SWAP" if i % 4 else "BTC-USD-SWAP"
    rows = [okx.trade(inst, str(130_000_000 + 3 * i + n), f"{rng.uniform(99000, 101000):.1f}",
                      str(rng.randint(1, 400)), rng.choice(("buy", "sell")), ts) for n in range(1 + i % 3)]
    return okx.trades_frame(inst, rows)


def _bitmex(rng: random.Random, i: int, t0: int = BASE_TS) -> str:
    ts = t0 + i
    if i % 50 == 7:
        return bitmex.table_frame("liquidation", "insert", [bitmex.liquidation(
            f"{i:08d}-815a-f93a-c9a2-ffbbabeddbac", "XBTUSD", rng.choice(("Buy", "Sell")), 99100.5,
            rng.randint(100, 50_000))])
    symbol = "XBTUSD" if i % 3 else "ETHUSD"
    rows = [bitmex.trade(_iso(ts), symbol, rng.choice(("Buy", "Sell")), rng.randint(1, 20_000) * 100,
                         round(rng.uniform(99000, 101000), 1), f"{i:08d}-3bd1-0c6e-b7d6-5b2e0a8d000{n}")
            for n in range(1 + i % 3)]
    return bitmex.table_frame("trade", "insert", rows)


def _deribit(rng: random.Random, i: int, t0: int = BASE_TS) -> str:
    ts = t0 + i
    rows = [deribit.trade("BTC-PERPETUAL", str(316_400_000 + 3 * i + n), 200_000 + 3 * i + n, ts,
                          rng.choice(("buy", "sell")), round(rng.uniform(99000, 101000), 1),
                          float(rng.randint(1, 500) * 10), "T" if i % 50 == 7 and n == 0 else None)
            for n in range(1 + i % 3)]
    return deribit.trades_frame("BTC-PERPETUAL", rows)


def _gate(rng: random.Random, i: int, t0: int = BASE_TS) -> str:
    ts = t0 + i
    if i % 50 == 7:
        return gate.update_frame("futures.public_liquidates", [gate.liquidation(
            "BTC_USDT", rng.choice((-1, 1)) * rng.randint(1, 5000), "99100.2", ts)], ts)
    rows = [gate.trade("BTC_USDT", 27_000_000 + 3 * i + n, rng.choice((-1, 1)) * rng.randint(1, 9000),
                       f"{rng.uniform(99000, 101000):.1f}", ts) for n in range(1 + i % 3)]
    return gate.update_frame("futures.trades", rows, ts)


def _coinbase(rng: random.Random, i: int, t0: int = BASE_TS) -> str:
    return coinbase.match_frame(coinbase.match(700_000_000 + i, "BTC-USD", rng.choice(("buy", "sell")),
                                               f"{rng.uniform(0.0001, 2):.8f}", f"{rng.uniform(99000, 101000):.2f}",
                                               _iso(t0 + i)))


def _binance_usdm(rng: random.Random, i: int, t0: int = BASE_TS) -> str:
    ts = t0 + i
    if i % 50 == 7:
        return binance_usdm.force_order("BTCUSDT", rng.choice(("SELL", "BUY")), "99500.1", "99480.3",
                                        f"{rng.uniform(0.01, 3):.3f}", ts)
    symbol = "BTCUSDT" if i % 3 else "ETHUSDT"
    return binance_usdm.agg_trade(symbol, 2_541_000_000 + i, f"{rng.uniform(99000, 101000):.1f}",
                                  f"{rng.uniform(0.001, 2):.3f}", rng.random() < 0.5, ts)


def _binance_coinm(rng: random.Random, i: int, t0: int = BASE_TS) -> str:
    ts = t0 + i
    if i % 50 == 7:
        return binance_coinm.force_order("BTCUSD_PERP", rng.choice(("SELL", "BUY")), "99500.1", "99480.3",
                                         str(rng.randint(1, 400)), ts)
    symbol = "BTCUSD_PERP" if i % 3 else "ETHUSD_PERP"
    return binance_coinm.agg_trade(symbol, 912_000_000 + i, f"{rng.uniform(99000, 101000):.1f}",
                                   str(rng.randint(1, 500)), rng.random() < 0.5, ts)


def _kraken_futures(rng: random.Random, i: int, t0: int = BASE_TS) -> str:
    ts = t0 + i
    kind = "liquidation" if i % 50 == 7 else "fill"
    row = kraken_futures.trade("PF_XBTUSD", f"{i:08x}-420b-4c24-a9f1-462a054d86f1", rng.choice(("buy", "sell")), kind,
                               655_000 + i, ts, round(rng.uniform(0.0001, 2), 4), round(rng.uniform(99000, 101000), 1))
    return kraken_futures.trade_frame(row)


def _htx(rng: random.Random, i: int, t0: int = BASE_TS) -> str:
    ts = t0 + i
    if i % 50 == 7:
        return htx.liquidations_frame("BTC-USDT", [htx.liquidation("BTC-USDT", rng.choice(("buy", "sell")),
                                                                    rng.randint(1, 5000), 0.001, 99100.2, ts)], ts)
    rows = [htx.trade(1_316_022_650_000 + 3 * i + n, ts, round(rng.uniform(99000, 101000), 1), rng.randint(1, 9000),
                      0.001, rng.choice(("buy", "sell"))) for n in range(1 + i % 3)]
    return htx.trades_frame("BTC-USDT", rows, ts)


def _hyperliquid(rng: random.Random, i: int, t0: int = BASE_TS) -> str:
    ts = t0 + i
    coin = "BTC" if i % 4 else "kPEPE"
    price = f"{rng.uniform(99000, 101000):.1f}" if coin == "BTC" else f"{rng.uniform(0.015, 0.02):.6f}"
    rows = [hyperliquid.trade(coin, rng.choice(("B", "A")), price, f"{rng.uniform(0.0001, 2):.5f}", ts,
                              877_707_108_085_800 + 3 * i + n) for n in range(1 + i % 3)]
    return hyperliquid.trades_frame(rows)


_BUILDERS: dict[str, Callable[[random.Random, int, int], str]] = {
    "bybit": _bybit, "okx": _okx, "bitmex": _bitmex, "deribit": _deribit, "gate": _gate, "coinbase": _coinbase,
    "binance-usdm": _binance_usdm, "binance-coinm": _binance_coinm, "kraken-futures": _kraken_futures, "htx": _htx,
    "hyperliquid": _hyperliquid,
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
    "binance-usdm": ('{"result":null,"id":1}',),
    "binance-coinm": ('{"result":null,"id":1}',),
    "kraken-futures": ('{"feed":"heartbeat","time":1737972000000}',
                       '{"event":"subscribed","feed":"trade","product_ids":["PF_XBTUSD"]}'),
    "htx": ('{"id":"BTC-USDT","status":"ok","subbed":"market.BTC-USDT.trade.detail","ts":1737972000123}',
            '{"op":"sub","cid":"liq-*","topic":"public.*.liquidation_orders","ts":1737972000123,"err-code":0}'),
    "hyperliquid": ('{"channel":"pong"}',
                    '{"channel":"subscriptionResponse","data":{"method":"subscribe","subscription":{"type":"trades",'
                    '"coin":"BTC"}}}'),
}


def recorded_frames(venue: str, count: int, seed: int = 7) -> list[str]:
    """``count`` data frames of ``venue`` with a control frame every 100 frames."""
    rng = random.Random(f"{venue}:{seed}")
    build, control = _BUILDERS[venue], CONTROL_FRAMES[venue]
    return [control[i // 100 % len(control)] if i % 100 == 99 else build(rng, i) for i in range(count)]


def live_frame(venue: str, rng: random.Random, i: int, ts: int) -> str:
    """The ``i``-th data frame of ``venue`` (ids from ``i``) with event time ``ts`` (a soak's live clock)."""
    return _BUILDERS[venue](rng, i, ts - i)
