"""Backfill benchmark: 300 instruments, 48 h of 1-minute klines from fake REST servers (no rate
limits), side by side in one run:

    python -m bench.backfill [--instruments 300] [--minutes 2880]

1. fetch alone: every instrument's 1-minute klines fetched and parsed (the backfill's own client,
   chunks and concurrency), nothing published;
2. the full warm start: a ``cryptopulse process`` worker is running; the backfill fetches and
   publishes (history, then the 1-minute bars). Two clocks: stage 1 done, when the worker's
   ``cryptopulse_processor_events_total{stream="trade_bars"}`` has counted every bar; and the whole
   processor done (what a user waits for), when the sector stage has applied the last minute and
   the flush after it has emitted the closed ``BTC:1m`` candle of the minute before it (its
   ``ts_emit`` is the time; the sector stage applies minute records in event-time order, so every
   earlier minute of every asset is in by then).

Prints both times and how much processing adds to the fetch time (issue target: <= 50 %). The fake
servers run in their own process; the machine may be shared, so compare the ratio, not seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import multiprocessing
import os
import signal
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.common import topics
from services.common.broker import EmbeddedBroker, free_port
from services.common.compacted import publish
from services.common.events import USD_QUOTES
from services.common.kafka import create_topics
from services.common.settings import KafkaSettings, load
from services.ingestor import instruments as instrument_data
from services.ingestor.backfill import run
from services.ingestor.backfill.client import make_clients
from services.ingestor.backfill.plan import instruments_for, plan_ranges, windows
from services.ingestor.backfill.progress import Progress
from services.ingestor.backfill.run import Summary, backfill, fetch_each, minute_fetcher
from services.ingestor.backfill.settings import BackfillSettings
from services.reference.service import load_file, read_snapshot

VENUES = ("binance-usdm", "bybit", "okx")
NAMES = {"binance-usdm": "binance", "bybit": "bybit", "okx": "okx"}


def add_synthetic(count: int) -> list[dict[str, Any]]:
    """``count`` extra Binance perpetuals (SYN000USDT, ...) through the instrument refresh path,
    and their asset records."""
    symbols = [{"symbol": f"SYN{i:03d}USDT", "status": "TRADING", "contractType": "PERPETUAL",
                "baseAsset": f"SYN{i:03d}", "quoteAsset": "USDT"} for i in range(count)]
    from services.ingestor.refresh import refresh_from_rest
    from services.ingestor.venues.registry import adapter_class

    refresh_from_rest(adapter_class("binance-usdm"), fetch=lambda _url, _timeout: {"symbols": symbols})
    return [{"asset": f"SYN{i:03d}", "name": f"Synthetic {i}", "circulating_supply": 1e6 + i,
             "sectors": ["ai"] if i % 3 == 0 else [], "stablecoin": False} for i in range(count)]


def serve_fakes(symbols: dict[str, dict[str, float]], ports: Any, stop: Any) -> None:
    from tests.live.fake_klines import FakeKlines

    servers = [FakeKlines(NAMES[v], symbols[v], None).start() for v in VENUES]
    ports.put({v: s.url for v, s in zip(VENUES, servers, strict=True)})
    stop.wait()
    for server in servers:
        server.stop()


def settings_for(urls: dict[str, str], minutes: int) -> BackfillSettings:
    return load(BackfillSettings, environ={}, backfill_binance_url=urls["binance-usdm"],
                backfill_bybit_url=urls["bybit"], backfill_okx_url=urls["okx"], backfill_minutes=minutes,
                backfill_binance_weight_per_minute=1e9, backfill_bybit_requests_per_second=1e6,
                backfill_okx_requests_per_second=1e6)


async def fetch_only(settings: BackfillSettings, assets: list[str]) -> tuple[float, int]:
    executor = ThreadPoolExecutor(max_workers=settings.backfill_concurrency * len(VENUES))
    clients = make_clients(settings, executor)
    chosen = instruments_for({v: instrument_data.load_instruments(v) for v in VENUES}, assets, USD_QUOTES)
    now = time.time_ns() // 1_000_000
    ranges = plan_ranges(now, settings.backfill_minutes)
    summary, progress = Summary(ranges), Progress(io.StringIO())
    started, rows = time.perf_counter(), 0
    for a, b in windows(*ranges.minutes, settings.backfill_chunk_minutes * 60_000):
        fetched = await fetch_each(chosen, minute_fetcher(clients, a, b, now), progress, summary, "1m")
        rows += sum(len(k) for k in fetched.values())
    executor.shutdown()
    return time.perf_counter() - started, rows


def applied(port: int, stream: str = "trade_bars") -> float:
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()  # noqa: S310
    except OSError:
        return -1.0
    return sum(float(line.split()[-1]) for line in body.splitlines()
               if line.startswith('cryptopulse_processor_events_total{') and f'stream="{stream}"' in line)


async def emitted_at(bootstrap: str, key: bytes, open_time: int, timeout_s: float = 600.0) -> float:
    """Wall time (epoch s) at which the closed candle ``key`` of ``open_time`` (or a later one) was
    emitted: read from the candles topic, its ``ts_emit``."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", fetch_max_bytes=16 << 20)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topics.CANDLES.name, p) for p in range(topics.CANDLES.partitions)])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500, max_records=50_000)).values():
                for record in records:
                    if record.key != key:
                        continue
                    candle = orjson.loads(record.value)
                    if candle["closed"] and candle["open_time"] >= open_time:
                        return float(candle["ts_emit"]) / 1000
        raise SystemExit(f"no closed {key.decode()} candle of {open_time} within {timeout_s:.0f} s")
    finally:
        await consumer.stop()


def per_venue(bars: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The comparison arm: every venue's bar kept (what the backfill published before merging)."""
    return sorted(bars, key=lambda x: (x["minute"], x["exchange"], x["instrument"]))


def warm_start(urls: dict[str, str], extra: list[dict[str, Any]], minutes: int,
               merged: bool) -> tuple[float, float, float, Any]:
    """A fresh broker and processor worker; (publish done, stage 1 done, whole processor done)
    seconds and the summary."""
    broker = EmbeddedBroker(port=free_port()).start()
    worker: subprocess.Popen[bytes] | None = None
    original = run.merge_minutes
    try:
        asyncio.run(create_topics(broker.bootstrap))
        kafka = load(KafkaSettings, environ={}, broker_port=broker.port)

        async def publish_reference() -> None:
            await load_file(kafka)
            await publish(kafka, [(topics.ASSETS, r["asset"], r) for r in extra])

        asyncio.run(publish_reference())
        metrics_port = free_port()
        env = {**os.environ, "CRYPTOPULSE_BROKER_PORT": str(broker.port), "CRYPTOPULSE_KAFKA_BOOTSTRAP": "",
               "CRYPTOPULSE_PROCESSOR_METRICS_PORT": str(metrics_port), "CRYPTOPULSE_LOG_LEVEL": "WARNING"}
        worker = subprocess.Popen([sys.executable, "-m", "services.cli", "process"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        while applied(metrics_port) < 0:
            time.sleep(0.2)
        time.sleep(8)                                   # group join on the embedded broker
        if not merged:
            run.merge_minutes = per_venue  # type: ignore[assignment]
        started, started_epoch = time.perf_counter(), time.time()
        summary = asyncio.run(backfill(kafka, settings_for(urls, minutes), out=io.StringIO()))
        published_s = time.perf_counter() - started
        while applied(metrics_port) < summary.bars:
            if worker.poll() is not None:
                raise SystemExit("the processor worker died")
            time.sleep(0.2)
        stage1_s = time.perf_counter() - started
        last_minute = summary.ranges.minutes[1] - 60_000
        done = asyncio.run(emitted_at(broker.bootstrap, b"BTC:1m", last_minute - 60_000))
        return published_s, stage1_s, done - started_epoch, summary
    finally:
        run.merge_minutes = original  # type: ignore[assignment]
        if worker is not None and worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(20)
        broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instruments", type=int, default=300)
    parser.add_argument("--minutes", type=int, default=2880)
    parser.add_argument("--compare", action="store_true",
                        help="also run the warm start with one bar per venue (before merging), side by side")
    args = parser.parse_args()

    known = [r["asset"] for r in read_snapshot().records]
    listed = instruments_for({v: instrument_data.load_instruments(v) for v in VENUES}, known, USD_QUOTES)
    extra = add_synthetic(max(0, args.instruments - len(listed)))
    assets = known + [r["asset"] for r in extra]
    symbols = {v: {s: i.contract_size for s, i in instrument_data.load_instruments(v).items()} for v in VENUES}
    ports: Any = multiprocessing.Queue()
    stop = multiprocessing.Event()
    fakes = multiprocessing.Process(target=serve_fakes, args=(symbols, ports, stop), daemon=True)
    fakes.start()
    urls = ports.get(timeout=30)
    try:
        count = len(instruments_for({v: instrument_data.load_instruments(v) for v in VENUES}, assets, USD_QUOTES))
        print(f"{count} instruments, {args.minutes} one-minute klines each, fake REST servers without rate limits")
        fetch_s, rows = asyncio.run(fetch_only(settings_for(urls, args.minutes), assets))
        print(f"fetch alone:           {fetch_s:7.1f} s  ({rows} klines, {rows / fetch_s:,.0f}/s)")
        arms = [("one bar per asset-minute", True)] + ([("one bar per venue-minute", False)] if args.compare else [])
        for name, merged in arms:
            published_s, stage1_s, total_s, summary = warm_start(urls, extra, args.minutes, merged)
            print(f"[{name}] fetch + publish: {published_s:7.1f} s  ({summary.line()})")
            print(f"[{name}] until stage 1 applied every bar: {stage1_s:7.1f} s")
            print(f"[{name}] until the whole processor applied them (sector stage, closed candles out): "
                  f"{total_s:7.1f} s; processing adds {100 * (total_s - fetch_s) / fetch_s:.0f} % to the "
                  f"fetch time (target <= 50 %)")
    finally:
        stop.set()
        fakes.join(10)


if __name__ == "__main__":
    main()
