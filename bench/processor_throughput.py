"""Processor benchmark: trade events in -> derived updates out, on the embedded broker.

    python -m bench.processor_throughput [--trades 400000] [--naive-trades 20000] [--only latency]

1. Throughput, side by side in one run: a ``cryptopulse process`` worker fed exact micro-bars
   (the ingestor's hot-path format, ~TRADES_PER_BAR trades per bar) vs. a naive Faust agent that
   reads every raw trade and updates a table per event. Rates come from each worker's own counter
   between its first and last processed event; the worker's final asset stats are checked against
   the oracle.
2. Memory: RSS of the pure state (asset rings + the sector stage's mirrors) holding 24 h of
   one-minute activity for 500 instruments in 20 sectors, measured in a fresh process; the pending
   outputs (stats, sector caps, candles) are taken once per hour of data, as the worker's timer does.
3. Latency: bars carrying 10k trades/s with ``ts_recv`` = send time; a consumer of ``asset-stats``
   measures receive time - ``ts_recv`` of the newest bar each update includes (p50/p99).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from services.common import topics
from services.common.broker import EmbeddedBroker, free_port
from services.common.events import Trade, TradeBar
from services.common.kafka import create_topics
from services.processor.reference import bundled_universe
from tests import oracle

T0 = 1_737_936_000_000
ASSETS = ("BTC", "ETH", "SOL", "BNB", "XRP", "ADA", "AVAX", "RENDER")
TRADES_PER_BAR = 50


def make_bars(trades: int, seed: int, ts_recv: int | None = None) -> list[TradeBar]:
    """Bars of TRADES_PER_BAR trades each, per asset, spread over 24 h of event time."""
    rng = random.Random(seed)
    bars = []
    per_asset = trades // TRADES_PER_BAR // len(ASSETS)
    for a, asset in enumerate(ASSETS):
        price = 10.0 * (a + 1)
        for i in range(per_asset):
            ts = T0 + i * (86_400_000 // per_asset)
            ts = min(ts, ts // 60_000 * 60_000 + 59_000)
            price *= 1 + rng.uniform(-0.001, 0.001)
            first = i * TRADES_PER_BAR
            bars.append(TradeBar(
                id=f"bench:{asset}-USDT-PERP:{first}:{first + TRADES_PER_BAR - 1}:{TRADES_PER_BAR}",
                exchange="bench", instrument=f"{asset}-USDT-PERP", base=asset, quote="USDT", market="perp",
                minute=ts // 60_000 * 60_000, count=TRADES_PER_BAR, volume=1.0, notional_usd=price * 10,
                buy_notional_usd=price * 5, open=price, high=price * 1.001, low=price * 0.999, close=price,
                first_trade_id=str(first), last_trade_id=str(first + TRADES_PER_BAR - 1), ts_first=ts, ts_last=ts + 500,
                ts_recv=ts_recv if ts_recv is not None else ts + 600))
    return bars


def make_trades(count: int) -> list[Trade]:
    return [Trade(exchange="bench", symbol=f"{a}USDT", instrument=f"{a}-USDT-PERP", base=a, quote="USDT",
                  market="perp", side="buy", price=10.0, size=1.0, notional_usd=10.0, trade_id=str(i),
                  ts=T0 + i, ts_recv=T0 + i) for i in range(count) for a in (ASSETS[i % len(ASSETS)],)]


async def produce(bootstrap: str, topic: str, items: list[tuple[str, Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=1 << 20)
    await producer.start()
    try:
        batch = []
        for key, value in items:
            batch.append(await producer.send(topic, key=key.encode(), value=orjson.dumps(value)))
            if len(batch) >= 5000:
                await asyncio.gather(*batch)
                batch = []
        await asyncio.gather(*batch)
    finally:
        await producer.stop()


def metric(port: int, series: str) -> float:
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return 0.0
    for line in body.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


def start_processor(broker: EmbeddedBroker, metrics_port: int, *extra: str,
                    app_id: str | None = None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CRYPTOPULSE_BROKER_PORT": str(broker.port), "CRYPTOPULSE_KAFKA_BOOTSTRAP": "",
           "CRYPTOPULSE_PROCESSOR_METRICS_PORT": str(metrics_port), "CRYPTOPULSE_LOG_LEVEL": "WARNING"}
    if app_id:
        env["CRYPTOPULSE_PROCESSOR_APP_ID"] = app_id
    return subprocess.Popen([sys.executable, "-m", "services.cli", "process", *extra], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def rate_of(read: Any, target: float, timeout: float) -> tuple[float, float]:
    """(events/s between the first and the last sample that moved, seconds) of a growing counter."""
    deadline = time.monotonic() + timeout
    first: tuple[float, float] | None = None
    last = (time.monotonic(), 0.0)
    while time.monotonic() < deadline:
        value = read()
        now = time.monotonic()
        if value > 0 and first is None:
            first = (now, value)
        if value > last[1]:
            last = (now, value)
        if value >= target:
            break
        time.sleep(0.05)
    if first is None or last[0] <= first[0]:
        return 0.0, 0.0
    return (last[1] - first[1]) / (last[0] - first[0]), last[0] - first[0]


def bench_bars(broker: EmbeddedBroker, trades: int) -> tuple[float, bool]:
    bars = make_bars(trades, seed=1)
    asyncio.run(produce(broker.bootstrap, topics.TRADE_BARS.name, [(b.base, b) for b in bars]))
    port = free_port()
    proc = start_processor(broker, port)
    try:
        total = sum(b.count for b in bars)
        rate, _ = rate_of(lambda: metric(port, "cryptopulse_processor_trades_total"), total, timeout=300)
        time.sleep(2.5)
        expected = oracle.compute(bars, [], bundled_universe())["asset-stats"]
        got = asyncio.run(latest(broker.bootstrap, topics.ASSET_STATS.name))
        exact = all(abs(got[a]["volume_24h_usd"] - v["volume_24h_usd"]) <= 1e-9 * v["volume_24h_usd"]
                    and got[a]["trades_24h"] == v["trades_24h"] and got[a]["price"] == v["price"]
                    for a, v in expected.items())
        return rate, exact
    finally:
        stop(proc)


async def latest(bootstrap: str, topic: str) -> dict[str, dict[str, Any]]:
    from aiokafka import TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: dict[str, dict[str, Any]] = {}
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    out[r.key.decode()] = orjson.loads(r.value)
        return out
    finally:
        await consumer.stop()


# ---------- the naive agent: one Faust event and one table update per raw trade ----------
def naive_worker(bootstrap: str, counter_file: str) -> None:
    import faust

    from services.common.kafka import EMBEDDED_FAUST_SETTINGS

    asyncio.set_event_loop(asyncio.new_event_loop())
    app = faust.App("bench-naive", broker=f"kafka://{bootstrap}", store="memory://", web_enabled=False,
                    table_standby_replicas=0, datadir=counter_file + ".d", **EMBEDDED_FAUST_SETTINGS)
    trades = app.topic(topics.TRADES.name, value_serializer="raw")
    volume = app.Table("naive-volume", default=float, partitions=topics.TRADES.partitions)
    seen = [0]

    @app.agent(trades)
    async def per_trade(stream: Any) -> None:
        async for event in stream.events():
            trade = orjson.loads(event.value)
            volume[trade["base"]] += trade["notional_usd"]
            seen[0] += 1

    @app.timer(0.05)
    async def report() -> None:
        with open(counter_file, "w") as f:
            f.write(str(seen[0]))

    faust.Worker(app, loglevel="warning", quiet=True, redirect_stdouts=False, override_logging=False).execute_from_commandline()


def bench_naive(broker: EmbeddedBroker, count: int) -> float:
    trades = make_trades(count)
    asyncio.run(produce(broker.bootstrap, topics.TRADES.name, [(t.instrument, t) for t in trades]))
    counter = f"/tmp/cryptopulse-bench-naive-{os.getpid()}"
    proc = subprocess.Popen([sys.executable, "-m", "bench.processor_throughput", "--naive-worker", broker.bootstrap,
                             counter], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def read() -> float:
        try:
            with open(counter) as f:
                return float(f.read() or 0)
        except OSError:
            return 0.0

    try:
        rate, _ = rate_of(read, count, timeout=300)
        return rate
    finally:
        stop(proc)
        for path in (counter,):
            if os.path.exists(path):
                os.remove(path)


# ---------- realistic shapes: one trade per bar, pure stages driven as the agents drive them ----------
SHAPES = ((65, 6, 1), (65, 6, 7), (500, 20, 1), (500, 20, 7))   # (instruments, sectors, days of event time)
SHAPE_BATCH = 200          # bars per agent batch (a replay's batches are small: the ingestor sends as it goes)
SHAPE_WALL_PER_BATCH = 0.05


def shape_universe(assets: int, sectors: int) -> Any:
    from services.processor.reference import AssetInfo, Universe

    universe = Universe()
    for i in range(assets):
        universe.apply(AssetInfo(asset=f"A{i}", circulating_supply=1e6 * (i + 1),
                                 sectors=(f"s{i % sectors}", f"s{(i * 7 + 3) % sectors}")))
    return universe


def shape_bars(assets: int, days: int, count: int, seed: int) -> list[bytes]:
    """``count`` one-trade bars of random assets in event-time order over ``days`` days."""
    rng = random.Random(seed)
    span = days * 86_400_000
    prices = [10.0 * (i + 1) for i in range(assets)]
    out = []
    for k in range(count):
        ts = T0 + k * span // count
        i = rng.randrange(assets)
        prices[i] *= 1 + rng.uniform(-0.001, 0.001)
        p = prices[i]
        out.append(orjson.dumps({
            "id": f"x:A{i}-USDT-PERP:{k}:{k}:1", "exchange": "x", "instrument": f"A{i}-USDT-PERP", "base": f"A{i}",
            "quote": "USDT", "market": "perp", "minute": ts // 60_000 * 60_000, "count": 1, "volume": 1.0,
            "notional_usd": p, "buy_notional_usd": p, "open": p, "high": p, "low": p, "close": p,
            "first_trade_id": str(k), "last_trade_id": str(k), "ts_first": ts, "ts_last": ts, "ts_recv": ts + 5}))
    return out


def shape_run(assets: int, sectors: int, days: int, count: int) -> float:
    """µs of processor CPU per bar: asset stage, sector stage and the emissions of every flush."""
    from services.processor.stage_assets import AssetStage
    from services.processor.stage_sectors import SectorStage

    universe = shape_universe(assets, sectors)
    stage1, stage2 = AssetStage(universe, 1.0), SectorStage(universe, 1.0)
    stage2.configure(0, 10.0, [0])
    bars = shape_bars(assets, days, count, seed=assets * 10 + days)
    wall = 0.0
    started = time.process_time()
    for i in range(0, len(bars), SHAPE_BATCH):
        wall += SHAPE_WALL_PER_BATCH
        batch = stage1.apply((raw, 0) for raw in bars[i:i + SHAPE_BATCH])
        stage2.apply((record for _asset, record in batch.records), now=wall)
        stage1.due(wall)
        stage2.due_sectors(wall)
        stage2.due_candles(wall)
    return (time.process_time() - started) / len(bars) * 1e6


def bench_shapes(count: int) -> list[tuple[tuple[int, int, int], float]]:
    return [(shape, shape_run(*shape, count)) for shape in SHAPES]


# ---------- two workers vs one on pre-produced one-trade bars ----------
def bench_workers(broker: EmbeddedBroker, count: int) -> dict[int, float]:
    """Bars per second through stage 1 (all four trade-bars partitions consumed) with one and with
    two workers of a fresh consumer group each, on the same pre-produced one-trade bars."""
    bars = shape_bars(65, 1, count, seed=3)
    items = [(orjson.loads(raw)["base"], orjson.loads(raw)) for raw in bars]
    universe_assets = shape_universe(65, 6)
    asyncio.run(produce(broker.bootstrap, topics.ASSETS.name,
                        [(a, info.to_dict()) for a, info in universe_assets.assets.items()]))
    asyncio.run(produce(broker.bootstrap, topics.TRADE_BARS.name, items))
    rates = {}
    for workers in (1, 2):
        ports = [free_port() for _ in range(workers)]
        app_id = f"bench-workers-{workers}-{os.getpid()}"
        procs = [start_processor(broker, port, app_id=app_id) for port in ports]

        def consumed(ports: list[int] = ports) -> float:
            return sum(metric(p, "cryptopulse_processor_trades_total") for p in ports)

        try:
            rates[workers], _ = rate_of(consumed, count, timeout=600)
        finally:
            for proc in procs:
                stop(proc)
    return rates


# ---------- memory of 24 h state ----------
def memory_child() -> None:
    from services.processor.reference import AssetInfo, Universe
    from services.processor.stage_assets import AssetStage
    from services.processor.stage_sectors import SectorStage

    def rss() -> int:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS"))

    universe = Universe()
    for i in range(500):
        universe.apply(AssetInfo(asset=f"A{i}", circulating_supply=1e9, sectors=(f"s{i % 20}",)))
    before = rss()
    assets, sectors = AssetStage(universe, 1.0), SectorStage(universe, 1.0)

    def drain(now: float) -> None:
        """Take the pending outputs as the worker's emission timer does (one call per hour of data)."""
        assets.due(now)
        sectors.due_sectors(now)
        sectors.due_candles(now)

    for minute in range(1440):
        ts = T0 + minute * 60_000
        batch = []
        for i in range(500):
            bar = {"id": f"x:A{i}-USDT-PERP:{minute}:{minute}:1", "exchange": "x", "instrument": f"A{i}-USDT-PERP",
                   "base": f"A{i}", "quote": "USDT", "market": "spot", "minute": ts, "count": 30, "volume": 1.0,
                   "notional_usd": 100.0, "buy_notional_usd": 50.0, "open": 1.0, "high": 1.1, "low": 0.9,
                   "close": 1.05, "first_trade_id": str(minute), "last_trade_id": str(minute), "ts_first": ts,
                   "ts_last": ts + 1000, "ts_recv": ts + 1100}
            batch.append((orjson.dumps(bar), 0))
        result = assets.apply(batch)
        sectors.apply(record for _asset, record in result.records)
        if minute % 60 == 59:
            drain(float(minute))
    drain(1e9)
    print(rss() - before)


def bench_memory() -> float:
    out = subprocess.run([sys.executable, "-m", "bench.processor_throughput", "--memory-child"], capture_output=True,
                         text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1e6


# ---------- latency at a steady 10k trades/s ----------
async def latency_run(broker: EmbeddedBroker, seconds: float, trades_per_s: int) -> list[float]:
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=2)
    consumer = AIOKafkaConsumer(topics.ASSET_STATS.name, bootstrap_servers=broker.bootstrap,
                                auto_offset_reset="latest", enable_auto_commit=False, fetch_max_wait_ms=20)
    await producer.start()
    await consumer.start()
    sent: dict[tuple[str, int], int] = {}
    latencies: list[float] = []
    stop_at = time.time() + seconds

    async def reader() -> None:
        while time.time() < stop_at + 3:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                now = time.time() * 1000
                for r in records:
                    value = orjson.loads(r.value)
                    recv = sent.get((value["asset"], value["ts"]))
                    if recv is not None:
                        latencies.append(now - recv)

    task = asyncio.create_task(reader())
    await asyncio.sleep(1)
    bars_per_tick = max(1, trades_per_s // TRADES_PER_BAR // 100)   # 100 ticks per second
    seq = 0
    start = time.time()
    while time.time() < stop_at:
        for _ in range(bars_per_tick):
            asset = ASSETS[seq % len(ASSETS)]
            now = int(time.time() * 1000)
            ts = T0 + 2 * 86_400_000 + seq
            first = 10_000_000 + seq * TRADES_PER_BAR
            bar = TradeBar(id=f"lat:{asset}:{first}", exchange="lat", instrument=f"{asset}-USDT-PERP", base=asset,
                           quote="USDT", market="perp", minute=ts // 60_000 * 60_000, count=TRADES_PER_BAR,
                           volume=1.0, notional_usd=100.0, buy_notional_usd=50.0, open=10.0, high=10.0, low=10.0,
                           close=10.0, first_trade_id=str(first), last_trade_id=str(first + TRADES_PER_BAR - 1),
                           ts_first=ts, ts_last=ts, ts_recv=now)
            sent[(asset, ts)] = now
            await producer.send(topics.TRADE_BARS.name, key=asset.encode(), value=orjson.dumps(bar))
            seq += 1
        await asyncio.sleep(max(0.0, start + seq / (bars_per_tick * 100) - time.time()))
    await task
    await producer.stop()
    await consumer.stop()
    return latencies


def bench_latency(broker: EmbeddedBroker, seconds: float) -> tuple[float, float, int]:
    port = free_port()
    proc = start_processor(broker, port)
    try:
        rate_of(lambda: metric(port, "cryptopulse_processor_trades_total"), 1, timeout=5)
        asyncio.run(produce(broker.bootstrap, topics.TRADE_BARS.name,
                            [(b.base, b) for b in make_bars(TRADES_PER_BAR * len(ASSETS), seed=9)]))
        rate_of(lambda: metric(port, "cryptopulse_processor_trades_total"), 1, timeout=60)
        lat = asyncio.run(latency_run(broker, seconds, 10_000))
    finally:
        stop(proc)
    if not lat:
        return float("nan"), float("nan"), 0
    lat.sort()
    return statistics.median(lat), lat[min(len(lat) - 1, int(len(lat) * 0.99))], len(lat)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trades", type=int, default=400_000)
    parser.add_argument("--naive-trades", type=int, default=20_000)
    parser.add_argument("--latency-seconds", type=float, default=20)
    parser.add_argument("--shape-bars", type=int, default=100_000, help="bars per realistic shape")
    parser.add_argument("--worker-bars", type=int, default=60_000, help="bars for the two-workers run")
    parser.add_argument("--only", choices=("shapes", "memory", "throughput", "workers", "latency"),
                        help="run one part")
    parser.add_argument("--naive-worker", nargs=2, metavar=("BOOTSTRAP", "COUNTER_FILE"))
    parser.add_argument("--memory-child", action="store_true")
    args = parser.parse_args()
    if args.naive_worker:
        naive_worker(*args.naive_worker)
        return
    if args.memory_child:
        memory_child()
        return
    if args.only in (None, "shapes"):
        results = bench_shapes(args.shape_bars)
        for (n, k, days), us in results:
            print(f"shape: 1 trade per bar, {n} instruments / {k} sectors, {days} d: {us:.1f} µs per bar "
                  f"(target <= 30 µs)", flush=True)
        costs = [us for _shape, us in results]
        print(f"shape: slowest / fastest {max(costs) / min(costs):.2f}x (target flat within 1.5x)", flush=True)
    if args.only in (None, "memory"):
        mem = bench_memory()
        print(f"memory: 24 h state of 500 instruments / 20 sectors: {mem:.1f} MB RSS (target < 200 MB)", flush=True)
    for part in ("throughput", "workers", "latency"):
        if args.only not in (None, part):
            continue
        broker = EmbeddedBroker(port=free_port()).start()
        try:
            asyncio.run(create_topics(broker.bootstrap))
            if part == "throughput":
                bars_rate, exact = bench_bars(broker, args.trades)
                naive_rate = bench_naive(broker, args.naive_trades)
                ratio = bars_rate / naive_rate if naive_rate else float("inf")
                print(f"throughput: processor via bars {bars_rate:,.0f} trades/s (exact vs oracle: {exact}); "
                      f"naive per-event agent {naive_rate:,.0f} trades/s; ratio {ratio:.1f}x "
                      f"(targets >= 100k/s, >= 20x)", flush=True)
            elif part == "workers":
                rates = bench_workers(broker, args.worker_bars)
                print(f"workers: pre-produced one-trade bars through stage 1: one worker {rates[1]:,.0f} bars/s, "
                      f"two workers {rates[2]:,.0f} bars/s: {rates[2] / rates[1]:.2f}x (target >= 1.4x)", flush=True)
            else:
                p50, p99, n = bench_latency(broker, args.latency_seconds)
                print(f"latency ts_recv -> asset-stats update consumed, 10k trades/s: p50 {p50:.1f} ms, "
                      f"p99 {p99:.1f} ms over {n} updates (target p99 < 250 ms)", flush=True)
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
