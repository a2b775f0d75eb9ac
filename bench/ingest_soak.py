"""Ingest soak: every venue's fake server streaming at a realistic rate, with a cascade burst,
into the ingestor and the embedded broker, for minutes (a benchmark, not a test).

    python -m bench.ingest_soak [--seconds 600] [--rate 3000] [--burst-rate 20000] [--burst-seconds 10]

Two processes. The fakes process (``--serve``, started by this one) runs the fake server of every
venue (``tests.ingestor.fakes``: each venue's protocol and frame format, HTX gzip-compressed) and
streams recorded-style frames round-robin over the venues at ``--rate`` frames/s combined, with a
burst at ``--burst-rate`` halfway through; each frame's event time is its send time. This process
is the ingestor as ``cryptopulse ingest --source live`` runs it — the connection runtime (one
connection per planned subscription, pointed at its venue's fake), the pipeline and the Kafka
publisher (``Ingestor``) — against an embedded broker. It prints:

- accounting: frames served per venue vs frames received (× connections: HTX's two connections
  both get every frame), and the outcomes (every received frame is ok, ignored or dead-lettered;
  events are published or dropped as duplicates);
- latency: the ingestor's event lag (send → receipt, ``cryptopulse_ingestor_event_lag_seconds``)
  and publish latency (buffered → acknowledged by the broker, ``..._publish_latency_seconds``),
  p50/p99 at the histograms' bucket resolution;
- RSS of this process every ``--sample`` seconds: first, max, last, once a minute, and the slope
  over the last third (after the burst). The dedupe window (500k ids) fills in the first minutes:
  RSS rises until then.

What it does not cover: the processor and gateway (``up``), hence no frame → websocket latency.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import logging
import random
import subprocess
import sys
import time
from collections import Counter
from typing import Any

from services.common.broker import EmbeddedBroker, free_port
from services.common.frames import RawFrame
from services.common.kafka import create_topics
from services.common.settings import KafkaSettings
from services.ingestor import metrics
from services.ingestor.instruments import load_instruments
from services.ingestor.pipeline import Pipeline
from services.ingestor.producer import Publisher
from services.ingestor.runtime import Connection, Timing, frames_of, plan_connections
from services.ingestor.service import Ingestor
from services.ingestor.venues import registry
from services.ingestor.venues.base import Subscription
from tests.ingestor.fakes import bitmex, bybit, coinbase, deribit, gate, htx, hyperliquid, kraken_futures, okx
from tests.ingestor.fakes.exchange import FakeExchange, NoGreeting
from tests.ingestor.fakes.samples import live_frame

SUBSCRIPTIONS: dict[str, Subscription] = {
    "binance-usdm": Subscription(trades=("BTCUSDT", "ETHUSDT")),
    "binance-coinm": Subscription(trades=("BTCUSD_PERP", "ETHUSD_PERP")),
    "bybit": Subscription(trades=("BTCUSDT",), liquidations=("BTCUSDT",)),
    "okx": Subscription(trades=("BTC-USDT-SWAP", "BTC-USD-SWAP")),
    "bitmex": Subscription(trades=("XBTUSD", "ETHUSD"), liquidations=("XBTUSD",)),
    "deribit": Subscription(trades=("BTC-PERPETUAL",)),
    "gate": Subscription(trades=("BTC_USDT",), liquidations=("BTC_USDT",)),
    "coinbase": Subscription(trades=("BTC-USD",)),
    "kraken-futures": Subscription(trades=("PF_XBTUSD",)),
    "htx": Subscription(trades=("BTC-USDT",)),
    "hyperliquid": Subscription(trades=("BTC", "kPEPE")),
}


class _Silent(NoGreeting):
    """Binance's combined streams: the URL selects the streams; nothing to answer."""

    def reply(self, message: str) -> list[str]:
        return []

    def topics(self, message: str) -> list[str]:
        return []


def _protocols() -> dict[str, Any]:
    return {"binance-usdm": _Silent(), "binance-coinm": _Silent(), "bybit": bybit.BybitProtocol(),
            "okx": okx.OkxProtocol(), "bitmex": bitmex.BitmexProtocol(), "deribit": deribit.DeribitProtocol(),
            "gate": gate.GateProtocol(), "coinbase": coinbase.CoinbaseProtocol(),
            "kraken-futures": kraken_futures.KrakenFuturesProtocol(), "htx": htx.HtxProtocol(),
            "hyperliquid": hyperliquid.HyperliquidProtocol()}


# -- the fakes process ---------------------------------------------------------------------------

async def serve(seconds: float, rate: float, burst_rate: float, burst_seconds: float, clients: int) -> None:
    fakes = {venue: FakeExchange(protocol) for venue, protocol in _protocols().items()}
    for fake in fakes.values():
        await fake.__aenter__()
    print(json.dumps({venue: fake.port for venue, fake in fakes.items()}), flush=True)
    while sum(len(fake._clients) for fake in fakes.values()) < clients:     # every planned connection is up
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)                                                  # and subscribed
    venues, rng = list(fakes), random.Random(16)
    served: Counter[str] = Counter()
    start = time.monotonic()
    burst_from = start + (seconds - burst_seconds) / 2
    tick, sent = 0.01, 0.0
    index = 0
    while (now := time.monotonic()) < start + seconds:
        current = burst_rate if burst_from <= now < burst_from + burst_seconds else rate
        sent += current * tick
        batch, sent = int(sent), sent - int(sent)
        ts = int(time.time() * 1000)
        batches: dict[str, list[Any]] = {venue: [] for venue in venues}
        for _ in range(batch):
            venue = venues[index % len(venues)]
            frame = live_frame(venue, rng, index // len(venues), ts)
            batches[venue].append(gzip.compress(frame.encode(), mtime=0) if venue == "htx" else frame)
            index += 1
        for venue, frames in batches.items():
            if frames:
                await fakes[venue].serve_frames(frames)
                served[venue] += len(frames)
        await asyncio.sleep(max(0.0, tick - (time.monotonic() - now)))
    print(json.dumps({"served": served, "seconds": time.monotonic() - start}), flush=True)
    await asyncio.sleep(3600)    # keep the connections open until the parent stops us


# -- the ingestor side ---------------------------------------------------------------------------

def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _quantile(histogram: Any, q: float) -> float:
    """The upper bound of the bucket holding quantile ``q`` of a prometheus histogram (all labels)."""
    buckets: Counter[float] = Counter()
    for metric in histogram.collect():
        for sample in metric.samples:
            if sample.name.endswith("_bucket"):
                buckets[float(sample.labels["le"])] += sample.value
    bounds = sorted(buckets)
    if not bounds or not buckets[bounds[-1]]:
        return float("nan")
    target = q * buckets[bounds[-1]]
    return next(bound for bound in bounds if buckets[bound] >= target)


async def ingest(ports: dict[str, int], kafka: KafkaSettings, fakes: subprocess.Popen[str], sample: float) -> None:
    queue: asyncio.Queue[RawFrame] = asyncio.Queue(10_000)
    timing = Timing(ping_interval=None)
    adapters = registry.venues(load_instruments)
    connections = [Connection(adapters[venue], planned, queue, timing, url_override=f"ws://127.0.0.1:{port}")
                   for venue, port in ports.items()
                   for planned in plan_connections(adapters[venue], SUBSCRIPTIONS[venue])]
    per_venue = Counter(connection.venue.id for connection in connections)
    publisher = Publisher(kafka)
    await publisher.start()
    ingestor = Ingestor(Pipeline(adapters), publisher, clock=lambda: int(time.time() * 1000))
    stop = asyncio.Event()
    run = asyncio.create_task(ingestor.run(frames_of(connections, queue), stop))
    loop = asyncio.get_running_loop()
    done = loop.run_in_executor(None, fakes.stdout.readline)      # type: ignore[union-attr]
    rss: list[tuple[float, float]] = []
    started = time.monotonic()
    while not done.done():
        rss.append((time.monotonic() - started, _rss_mb()))
        await asyncio.wait({done}, timeout=sample)
    report = json.loads(done.result())
    deadline = time.monotonic() + 60                 # let the ingestor catch up with what was sent
    served = report["served"]
    while time.monotonic() < deadline and ingestor.frames < sum(served[v] * per_venue[v] for v in served):
        await asyncio.sleep(0.2)
    stop.set()
    summary = await run
    await publisher.stop()
    _print(report, per_venue, summary, rss, ingestor)


def _print(report: dict[str, Any], per_venue: Counter[str], summary: Any, rss: list[tuple[float, float]],
           ingestor: Ingestor) -> None:
    served: dict[str, int] = report["served"]
    frames_metric: Counter[tuple[str, str]] = Counter()
    for metric in metrics.FRAMES.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                frames_metric[(sample.labels["venue"], sample.labels["outcome"])] += sample.value
    print(f"streamed {sum(served.values())} frames in {report['seconds']:.0f} s "
          f"({sum(served.values()) / report['seconds']:,.0f} frames/s average)")
    print(f"{'venue':<15} {'served':>8} {'conns':>5} {'received':>9} {'ok':>8} {'ignored':>8} {'deadletter':>10}")
    for venue in sorted(served):
        outcomes = {o: frames_metric[(venue, o)] for o in ("ok", "ignored", "deadletter")}
        received = sum(outcomes.values())
        flag = "" if received >= served[venue] * per_venue[venue] else "  <- frames missing"
        print(f"{venue:<15} {served[venue]:>8} {per_venue[venue]:>5} {received:>9.0f} {outcomes['ok']:>8.0f} "
              f"{outcomes['ignored']:>8.0f} {outcomes['deadletter']:>10.0f}{flag}")
    print(f"pipeline: {dict(summary.outcomes)}")
    print(f"published (acknowledged): {summary.published}; unacknowledged {summary.unacknowledged}, "
          f"publish errors {summary.publish_errors}")
    print(f"event lag (send -> receipt) p50 {_quantile(metrics.EVENT_LAG, 0.5):g} s, "
          f"p99 {_quantile(metrics.EVENT_LAG, 0.99):g} s; publish latency (buffered -> acked) "
          f"p50 {_quantile(metrics.PUBLISH_LATENCY, 0.5):g} s, p99 {_quantile(metrics.PUBLISH_LATENCY, 0.99):g} s "
          "(bucket upper bounds)")
    if rss:
        tail = [point for point in rss if point[0] >= rss[-1][0] * 2 / 3] or rss     # after the burst
        slope = (tail[-1][1] - tail[0][1]) / max(tail[-1][0] - tail[0][0], 1e-9) * 60
        print(f"RSS MiB: first {rss[0][1]:.0f}, max {max(v for _, v in rss):.0f}, last {rss[-1][1]:.0f}; "
              f"last third (after the burst) slope {slope:+.2f} MiB/min over {len(tail)} samples")
        print("RSS MiB per minute: " + " ".join(f"{value:.0f}" for at, value in rss if at % 60 < 1e-9 or
                                                  int(at // 60) != int((at - 10) // 60)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--rate", type=float, default=3000.0, help="frames/s, all venues together")
    parser.add_argument("--burst-rate", type=float, default=20000.0)
    parser.add_argument("--burst-seconds", type=float, default=10.0)
    parser.add_argument("--sample", type=float, default=10.0, help="RSS sampling interval (s)")
    parser.add_argument("--serve", type=int, default=0, help=argparse.SUPPRESS)   # fakes process: client count
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.seconds, args.rate, args.burst_rate, args.burst_seconds, args.serve))
        return
    logging.basicConfig(level=logging.ERROR)
    clients = sum(len(plan_connections(registry.get(venue, load_instruments(venue)), subscription))
                  for venue, subscription in SUBSCRIPTIONS.items())
    command = [sys.executable, "-m", "bench.ingest_soak", "--serve", str(clients), "--seconds", str(args.seconds),
               "--rate", str(args.rate), "--burst-rate", str(args.burst_rate), "--burst-seconds",
               str(args.burst_seconds)]
    with EmbeddedBroker(port=free_port()) as broker, subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as fakes:
        try:
            asyncio.run(create_topics(broker.bootstrap))
            assert fakes.stdout is not None
            ports = json.loads(fakes.stdout.readline())
            kafka = KafkaSettings(kafka_bootstrap=broker.bootstrap, kafka_idempotence=False)
            asyncio.run(ingest(ports, kafka, fakes, args.sample))
        finally:
            fakes.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                fakes.wait(10)
            if fakes.poll() is None:
                fakes.kill()


if __name__ == "__main__":
    main()
