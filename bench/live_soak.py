"""Live soak through ``cryptopulse up --source live``: every venue's fake server streaming at a
realistic rate with a cascade burst, for minutes, into the whole stack as a user runs it (a
benchmark, not a test).

    python -m bench.live_soak [--seconds 600] [--rate 3000] [--burst-rate 20000] [--burst-seconds 10]
                              [--sample 10] [--set CRYPTOPULSE_NAME=VALUE ...] [--keep DIR]

Processes: the fakes process (``bench.soak_fakes``: the fake server of each of the 11 venues, frames
in each venue's exact format, each frame's event time its send time), a fake CoinGecko (a thread of
this process, for the reference refresh at start), and ``python -m services.cli up --source live``
with its children: the embedded broker (Tansu), ingestor, processor and gateway. Every venue's
websocket URL points at its fake (``CRYPTOPULSE_VENUE_URL_OVERRIDE=venue=URL,...``, which also skips
the instruments' REST refresh: the bundled snapshots are used), ``CRYPTOPULSE_INGEST_SYMBOLS`` is the
symbols the fakes stream, the backfill is off (``CRYPTOPULSE_BACKFILL_ON_START=false``), the journal
is on (as with the embedded broker by default) in a temporary data directory, every other setting
is the default (processor emit interval 1 s). Once ``up`` says it is up and the gateway answers
``/readyz``, a websocket client subscribes to ``asset:*`` and ``liquidations:24h:all`` and the
fakes start streaming. At the end the bench stops ``up`` with SIGINT (as Ctrl-C does) and checks
that every process of the stack is gone.

What it prints:

- accounting, from the ingestor's ``/metrics`` after the stream ended and the ingestor caught up:
  frames served per venue vs received (× connections: HTX's two connections both get every
  frame) by outcome (ok, ignored, dead-lettered); events (trades, liquidations), duplicates
  dropped, messages acknowledged by the broker per topic, dead letters by reason, reconnects and
  stale resets (a reconnect loses the frames sent meanwhile);
- frame → websocket latency, as a client sees it: for each ``update`` the client receives on those
  channels, its receipt time minus ``data.ts``. ``data.ts`` is the event time of the newest trade
  (``asset-stats``: the latest trade bar's ``ts_last``) or liquidation (``liquidation-totals``)
  the update reflects, and the fakes stamp event time = send time, so this is the age of the newest
  frame that reached the client: websocket read, parse, micro-bar (closes ≤ 250 ms after its first
  trade), Kafka, processor, conflation, Kafka, gateway, websocket. It is sampled once per update
  (per channel at most once per emit interval), not per frame: frames that never become the newest
  of an update are not measured. p50/p99/max per phase (before the burst, burst + 30 s, after) and
  overall, split into event → ``ts_emit`` (ingest + processor), ``ts_emit`` → envelope ``ts``
  (Kafka → gateway read) and envelope ``ts`` → client receipt (gateway → client). All clocks are
  this machine's;
- the ingestor's own event lag (send → receipt) and publish latency (buffered → acknowledged)
  histograms, p50/p99 at bucket resolution;
- RSS (``/proc/PID/status`` VmRSS) of every process of the stack, every ``--sample`` seconds:
  first, max, last, once a minute and the slope over the last third (after the burst), and CPU
  seconds used by each during the stream.

What it does not do: real venues (their rates, reconnects, ping/pong timing, gzip sizes), more
than one websocket client (``bench.gateway_fanout`` measures fan-out), real Kafka (the broker is
the embedded Tansu, in memory), per-frame latency (see above), the backfill and the instruments'
REST refresh. On a 2-core machine the fakes, this client and the four services share the cores:
the figures are those of the whole box, not of the stack alone.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import websockets
from prometheus_client.parser import text_string_to_metric_families

from bench.gateway_fanout import gateway_ready
from bench.soak_fakes import (
    SUBSCRIPTIONS,
    FakesProcess,
    accounting_lines,
    add_rate_arguments,
    bucket_quantile,
    labelled,
    rss_lines,
    rss_mib,
    symbols,
)
from services.common.settings import load
from services.ingestor.commands import select_venues
from services.ingestor.runtime import plan_connections
from services.ingestor.settings import IngestorSettings
from tests.e2e.stack import Up, stack_env, wait_gone
from tests.live.fake_coingecko import FakeCoinGecko, snapshot_coins

CHANNELS = ["asset:*", "liquidations:24h:all"]
BURST_TAIL = 30.0        # seconds after the burst still counted as its phase
START_WITHIN = 180.0     # seconds for `up` to be up and the gateway ready
CATCH_UP = 120.0         # seconds the ingestor gets to take in every frame served
TICKS = os.sysconf("SC_CLK_TCK")


def soak_env(ports: dict[str, int], provider: FakeCoinGecko, data_dir: Path, extra: list[str]) -> dict[str, str]:
    """``up``'s environment: free ports, every venue at its fake, ``extra`` settings (NAME=VALUE) under
    the bench's own."""
    overrides = ",".join(f"{venue}=ws://127.0.0.1:{port}" for venue, port in sorted(ports.items()))
    own = dict(
        CRYPTOPULSE_INGEST_VENUES=",".join(sorted(ports)), CRYPTOPULSE_INGEST_SYMBOLS=",".join(symbols()),
        CRYPTOPULSE_VENUE_URL_OVERRIDE=overrides, CRYPTOPULSE_ASSETS_PROVIDER_URL=provider.root,
        CRYPTOPULSE_ASSETS_REQUESTS_PER_MINUTE="6000", CRYPTOPULSE_BACKFILL_ON_START="false",
        CRYPTOPULSE_DATA_DIR=str(data_dir), CRYPTOPULSE_LOG_LEVEL="WARNING")
    return stack_env(**{**dict(item.split("=", 1) for item in extra), **own})


def planned_connections(env: dict[str, str]) -> Counter[str]:
    """Connections per venue, as the ingestor under ``env`` plans them."""
    settings = load(IngestorSettings, env)
    return Counter({venue.id: len(plan_connections(venue, subscription))
                    for venue, subscription in select_venues(settings)})


# -- the stack's processes -----------------------------------------------------------------------

def _name(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return f"gone-{pid}"
    words = [a.decode(errors="replace") for a in argv if a]
    if "services.cli" in words:
        command = words[words.index("services.cli") + 1]
        return {"process": "processor", "ingest": "ingestor"}.get(command, command)
    return "broker" if words and "tansu" in Path(words[0]).name else Path(words[0]).name if words else str(pid)


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / TICKS


@dataclass
class Processes:
    """RSS and CPU of ``up`` and every process below it."""

    names: dict[int, str]
    rss: dict[int, list[tuple[float, float]]] = field(default_factory=dict)
    cpu_from: dict[int, float] = field(default_factory=dict)
    cpu_to: dict[int, float] = field(default_factory=dict)

    @classmethod
    def of(cls, up: Up) -> Processes:
        pids = {up.process.pid, *up.descendants()}
        return cls({pid: _name(pid) for pid in sorted(pids)})

    def sample(self, at: float) -> None:
        for pid in self.names:
            self.rss.setdefault(pid, []).append((at, rss_mib(pid)))

    def cpu(self, into: dict[int, float]) -> None:
        into.update({pid: cpu_seconds(pid) for pid in self.names})


# -- the websocket client ------------------------------------------------------------------------

@dataclass
class Sample:
    at: float              # seconds since the stream started (client receipt)
    channel: str
    total_ms: int          # receipt - data.ts
    processed_ms: int      # data.ts_emit - data.ts
    to_gateway_ms: int     # envelope ts - data.ts_emit
    to_client_ms: int      # receipt - envelope ts


async def watch(url: str, started_ms: int, samples: list[Sample], stop: asyncio.Event) -> None:
    """Keep the latency of every update whose newest event is from this run."""
    async with websockets.connect(url, open_timeout=10, max_size=None) as ws:
        await ws.send(orjson.dumps({"op": "subscribe", "id": 1, "channels": CHANNELS}).decode())
        while not stop.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), timeout=0.5)
            except TimeoutError:
                continue
            now = time.time_ns() // 1_000_000
            message = orjson.loads(raw)
            data = message.get("data")
            if message.get("type") != "update" or not isinstance(data, dict) or not isinstance(data.get("ts"), int):
                continue
            ts, emit = data["ts"], data.get("ts_emit", data["ts"])
            if ts >= started_ms:
                samples.append(Sample((now - started_ms) / 1000, message["channel"], now - ts, emit - ts,
                                      message["ts"] - emit, now - message["ts"]))


def latency_lines(samples: list[Sample], burst_from: float, burst_seconds: float) -> list[str]:
    def figures(values: list[int]) -> str:
        ordered = sorted(values)
        if not ordered:
            return "no samples"
        p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
        return f"p50 {statistics.median(ordered):.0f} p99 {p99} max {ordered[-1]} ms"

    burst_to = burst_from + burst_seconds + BURST_TAIL
    phases = {"before the burst": [s for s in samples if s.at < burst_from],
              f"burst + {BURST_TAIL:.0f} s": [s for s in samples if burst_from <= s.at < burst_to],
              "after": [s for s in samples if s.at >= burst_to], "all": samples}
    lines = [f"frame -> websocket latency (receipt - data.ts of updates on {', '.join(CHANNELS)}; "
             f"{len(samples)} updates from {len({s.channel for s in samples})} channels):"]
    for phase, chosen in phases.items():
        lines.append(f"  {phase:<17} n={len(chosen):<5} {figures([s.total_ms for s in chosen])}")
    lines.append("  split (all): event -> ts_emit " + figures([s.processed_ms for s in samples])
                 + "; ts_emit -> gateway read " + figures([s.to_gateway_ms for s in samples])
                 + "; gateway read -> client " + figures([s.to_client_ms for s in samples]))
    return lines


# -- metrics -------------------------------------------------------------------------------------

def scrape(port: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def _families(metrics: dict[str, Any], name: str) -> list[Any]:
    return [metrics[name]] if name in metrics else []


def received_frames(port: str) -> float:
    return sum(labelled(_families(scrape(port), "cryptopulse_ingestor_frames"), "venue", "outcome").values())


def ingest_lines(metrics: dict[str, Any]) -> list[str]:
    def total(name: str, *labels: str) -> Counter[tuple[str, ...]]:
        return labelled(_families(metrics, name), *labels)

    events = total("cryptopulse_ingestor_events", "kind")
    published = total("cryptopulse_ingestor_messages_published", "topic")
    deadletters = {reason: n for (reason,), n in total("cryptopulse_ingestor_deadletters", "reason").items() if n}
    lag = _families(metrics, "cryptopulse_ingestor_event_lag_seconds")
    publish = _families(metrics, "cryptopulse_ingestor_publish_latency_seconds")
    return [
        f"events: trades {events[('trade',)]:.0f}, liquidations {events[('liquidation',)]:.0f}; duplicates dropped "
        f"{sum(total('cryptopulse_ingestor_duplicates', 'venue').values()):.0f}; trade-id gaps "
        f"{sum(total('cryptopulse_ingestor_trade_gaps', 'venue').values()):.0f}",
        "acknowledged by the broker: " + ", ".join(f"{t} {n:.0f}" for (t,), n in sorted(published.items()) if n),
        f"dead letters by reason: {deadletters or 'none'}; publish errors "
        f"{sum(total('cryptopulse_ingestor_publish_errors').values()):.0f}, producer overflow "
        f"{sum(total('cryptopulse_ingestor_producer_overflow').values()):.0f}, reconnects "
        f"{sum(total('cryptopulse_ingestor_reconnects', 'venue').values()):.0f}, stale resets "
        f"{sum(total('cryptopulse_ingestor_stale_resets', 'venue').values()):.0f}",
        f"ingestor event lag (send -> receipt) p50 {bucket_quantile(lag, 0.5):g} s, p99 {bucket_quantile(lag, 0.99):g} s; "
        f"publish latency (buffered -> acked) p50 {bucket_quantile(publish, 0.5):g} s, "
        f"p99 {bucket_quantile(publish, 0.99):g} s (bucket upper bounds)",
    ]


# -- the run -------------------------------------------------------------------------------------

def wait_ready(up: Up) -> None:
    up.wait_for_output("Ctrl-C stops everything", timeout=START_WITHIN)
    if not gateway_ready(int(up.env["CRYPTOPULSE_GATEWAY_PORT"]), START_WITHIN):
        raise RuntimeError(f"the gateway was not ready within {START_WITHIN:.0f} s:\n{up.output()[-3000:]}")


async def soak(up: Up, fakes: FakesProcess, per_venue: Counter[str], args: argparse.Namespace) -> list[str]:
    processes = Processes.of(up)
    samples: list[Sample] = []
    stop = asyncio.Event()
    started_ms = time.time_ns() // 1_000_000 + 1000        # the fakes stream 1 s after "go"
    client = asyncio.create_task(watch(up.ws_url, started_ms, samples, stop))
    await asyncio.sleep(1.0)                                 # subscribed before the first frame
    fakes.go()
    processes.cpu(processes.cpu_from)
    done = asyncio.get_running_loop().run_in_executor(None, fakes.report)
    started = time.monotonic()
    while not done.done():
        processes.sample(time.monotonic() - started)
        await asyncio.wait({done}, timeout=args.sample)
    report = done.result()
    port = up.env["CRYPTOPULSE_INGESTOR_METRICS_PORT"]
    expected = sum(report["served"][venue] * per_venue[venue] for venue in report["served"])
    deadline = time.monotonic() + CATCH_UP
    while time.monotonic() < deadline and await asyncio.to_thread(received_frames, port) < expected:
        await asyncio.sleep(1.0)
    caught_up = time.monotonic() - started - report["seconds"]
    await asyncio.sleep(5.0)                                 # the last updates reach the client
    processes.sample(time.monotonic() - started)
    processes.cpu(processes.cpu_to)
    stop.set()
    await client
    metrics = await asyncio.to_thread(scrape, port)
    gateway = await asyncio.to_thread(scrape, up.env["CRYPTOPULSE_GATEWAY_METRICS_PORT"])
    lines = accounting_lines(report, per_venue, labelled(_families(metrics, "cryptopulse_ingestor_frames"),
                                                         "venue", "outcome"))
    lines.append(f"ingestor took in every frame served {caught_up:.1f} s after the stream ended "
                 f"(waited at most {CATCH_UP:.0f} s)")
    lines += ingest_lines(metrics)
    lines += latency_lines(samples, report["burst_from"], args.burst_seconds)
    read = labelled(_families(gateway, "cryptopulse_gateway_kafka_records"), "family")
    lines.append(f"gateway read {sum(read.values()):.0f} derived records from Kafka in "
                 f"{time.monotonic() - started:.0f} s (" + ", ".join(f"{f} {n:.0f}" for (f,), n in sorted(read.items()) if n)
                 + "); it keeps the last CRYPTOPULSE_GATEWAY_HISTORY_SIZE of each channel")
    for pid, name in processes.names.items():
        used = processes.cpu_to[pid] - processes.cpu_from[pid]
        lines += rss_lines(f"{name} ({pid})", processes.rss.get(pid, []))
        lines.append(f"{name} ({pid}): CPU {used:.0f} s during the stream and catch-up "
                     f"({used / max(time.monotonic() - started, 1e-9) * 100:.0f} % of one core)")
    return lines


def stop_stack(up: Up) -> str:
    pids = up.descendants()
    began = time.monotonic()
    up.process.send_signal(signal.SIGINT)
    try:
        code = up.process.wait(60)
    except Exception:       # noqa: BLE001 (reported, then killed by close())
        return "up did not exit within 60 s of SIGINT; killed"
    left = wait_gone(pids, 10)
    return (f"stopped: up exited {code} {time.monotonic() - began:.1f} s after SIGINT; "
            f"{'every child gone' if not left else f'still running: {sorted(left)}'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_rate_arguments(parser)
    parser.add_argument("--set", action="append", default=[], metavar="CRYPTOPULSE_NAME=VALUE",
                        help="a setting for `up` (repeatable; the bench's own settings win)")
    parser.add_argument("--keep", help="directory for up's log and data (default: a temporary one, removed)")
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="live-soak-") as scratch:
        work = Path(args.keep or scratch)
        work.mkdir(parents=True, exist_ok=True)
        provider = FakeCoinGecko(snapshot_coins()).start()
        try:
            # the connection count needs the env, the env needs the ports: plan with placeholder ports first
            per_venue = planned_connections(soak_env(dict.fromkeys(SUBSCRIPTIONS, 0), provider, work / "data", args.set))
            with FakesProcess(args, sum(per_venue.values())) as fakes:
                env = soak_env(fakes.ports, provider, work / "data", args.set)
                up = Up(env, work / "up.log", "--source", "live")
                try:
                    wait_ready(up)
                    lines = asyncio.run(soak(up, fakes, per_venue, args))
                    lines.append(stop_stack(up))
                finally:
                    up.close()
        finally:
            provider.stop()
    print(f"live soak: {args.seconds:.0f} s at {args.rate:.0f} frames/s, burst {args.burst_rate:.0f} frames/s for "
          f"{args.burst_seconds:.0f} s, through `cryptopulse up --source live`"
          + (f" with {' '.join(args.set)}" if args.set else "")
          + (f" (log: {work / 'up.log'})" if args.keep else ""))
    print("\n".join(lines))
    print("load average (1, 5, 15 min): before " + " ".join(f"{v:.2f}" for v in load_before)
          + ", after " + " ".join(f"{v:.2f}" for v in os.getloadavg()))


if __name__ == "__main__":
    main()
