"""What the soak benches share: the fakes process, RSS/CPU of a process, histogram quantiles and the
frame accounting table (``bench.ingest_soak``: ingestor in-process; ``bench.live_soak``: ``up``).

The fakes process (``python -m bench.soak_fakes``, started through :class:`FakesProcess`) runs the
fake server of every venue (``tests.ingestor.fakes``: each venue's protocol and frame format, HTX
gzip-compressed), prints their ports as one JSON line, waits until ``--clients`` connections are
open and a line arrives on its stdin (the parent's "go"), then streams recorded-style frames
(``tests.ingestor.fakes.samples.live_frame``) round-robin over the venues at ``--rate`` frames/s
combined, with a burst at ``--burst-rate`` for ``--burst-seconds`` halfway through. Each frame's
event time is its send time (ms). At the end it prints ``{"served": {venue: frames}, "seconds": s,
"burst_from": s}`` and keeps its connections open until stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

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


def symbols() -> list[str]:
    """Every symbol the generated frames carry (``CRYPTOPULSE_INGEST_SYMBOLS`` for ``up``)."""
    return sorted({s for sub in SUBSCRIPTIONS.values() for s in (*sub.trades, *sub.liquidations)})


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
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)    # the parent says go
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
    print(json.dumps({"served": served, "seconds": time.monotonic() - start, "burst_from": burst_from - start}),
          flush=True)
    await asyncio.sleep(3600)    # keep the connections open until the parent stops us


class FakesProcess:
    """``with FakesProcess(args, clients) as fakes:`` the fakes process; ``ports`` once started."""

    def __init__(self, args: argparse.Namespace, clients: int) -> None:
        self.command = [sys.executable, "-m", "bench.soak_fakes", "--clients", str(clients),
                        "--seconds", str(args.seconds), "--rate", str(args.rate), "--burst-rate", str(args.burst_rate),
                        "--burst-seconds", str(args.burst_seconds)]
        self.process: subprocess.Popen[str] | None = None
        self.ports: dict[str, int] = {}

    def __enter__(self) -> FakesProcess:
        self.process = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.ports = json.loads(self.process.stdout.readline())
        return self

    def go(self) -> None:
        """Start streaming (as soon as every planned connection is open)."""
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def report(self) -> dict[str, Any]:
        """Block until the stream has ended; what was served (see the module docstring)."""
        assert self.process is not None and self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the fakes process exited ({self.process.poll()}) without a report")
        report: dict[str, Any] = json.loads(line)
        return report

    def __exit__(self, *exc: object) -> None:
        if self.process is None:
            return
        self.process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


# -- measurements --------------------------------------------------------------------------------

def add_rate_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every soak shares: duration, rates, burst and RSS sampling."""
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--rate", type=float, default=3000.0, help="frames/s, all venues together")
    parser.add_argument("--burst-rate", type=float, default=20000.0)
    parser.add_argument("--burst-seconds", type=float, default=10.0)
    parser.add_argument("--sample", type=float, default=10.0, help="RSS sampling interval (s)")


def rss_mib(pid: int | str = "self") -> float:
    """Resident set size of a process (``/proc/PID/status`` VmRSS), 0 when it is gone."""
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def rss_lines(name: str, rss: list[tuple[float, float]]) -> list[str]:
    """First, max, last and the slope over the last third (after the burst) of ``(seconds, MiB)``
    samples, and the value once a minute."""
    if not rss:
        return [f"{name}: no RSS samples"]
    tail = [point for point in rss if point[0] >= rss[-1][0] * 2 / 3] or rss
    slope = (tail[-1][1] - tail[0][1]) / max(tail[-1][0] - tail[0][0], 1e-9) * 60
    minutes: dict[int, float] = {}
    for at, value in rss:
        minutes.setdefault(int(at // 60), value)
    return [f"{name}: RSS MiB first {rss[0][1]:.0f}, max {max(v for _, v in rss):.0f}, last {rss[-1][1]:.0f}; "
            f"last third slope {slope:+.2f} MiB/min over {len(tail)} samples",
            f"{name}: RSS MiB per minute: " + " ".join(f"{value:.0f}" for value in minutes.values())]


def bucket_quantile(metrics: Iterable[Any], q: float) -> float:
    """The upper bound of the bucket holding quantile ``q`` of a prometheus histogram (all labels
    summed); ``metrics`` are collected or parsed metric families."""
    buckets: Counter[float] = Counter()
    for metric in metrics:
        for sample in metric.samples:
            if sample.name.endswith("_bucket"):
                buckets[float(sample.labels["le"])] += sample.value
    bounds = sorted(buckets)
    if not bounds or not buckets[bounds[-1]]:
        return float("nan")
    target = q * buckets[bounds[-1]]
    return next(bound for bound in bounds if buckets[bound] >= target)


def labelled(metrics: Iterable[Any], *labels: str) -> Counter[tuple[str, ...]]:
    """A counter's ``_total`` samples summed by the given labels."""
    values: Counter[tuple[str, ...]] = Counter()
    for metric in metrics:
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                values[tuple(sample.labels[label] for label in labels)] += sample.value
    return values


def accounting_lines(report: dict[str, Any], per_venue: Counter[str], frames: Counter[tuple[str, ...]]) -> list[str]:
    """Frames served per venue vs received (served x connections: HTX's two connections both get
    every frame), from the ingestor's ``frames_total{venue,outcome}``."""
    served: dict[str, int] = report["served"]
    lines = [f"streamed {sum(served.values())} frames in {report['seconds']:.0f} s "
             f"({sum(served.values()) / report['seconds']:,.0f} frames/s average)",
             f"{'venue':<15} {'served':>8} {'conns':>5} {'received':>9} {'ok':>8} {'ignored':>8} {'deadletter':>10}"]
    for venue in sorted(served):
        outcomes = {o: frames[(venue, o)] for o in ("ok", "ignored", "deadletter")}
        received = sum(outcomes.values())
        flag = "" if received >= served[venue] * per_venue[venue] else "  <- frames missing"
        lines.append(f"{venue:<15} {served[venue]:>8} {per_venue[venue]:>5} {received:>9.0f} {outcomes['ok']:>8.0f} "
                     f"{outcomes['ignored']:>8.0f} {outcomes['deadletter']:>10.0f}{flag}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, required=True, help="connections to wait for before streaming")
    add_rate_arguments(parser)
    args = parser.parse_args()
    asyncio.run(serve(args.seconds, args.rate, args.burst_rate, args.burst_seconds, args.clients))


if __name__ == "__main__":
    main()
