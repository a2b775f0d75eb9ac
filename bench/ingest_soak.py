"""Ingest soak: every venue's fake server streaming at a realistic rate, with a cascade burst,
into the ingestor and the embedded broker, for minutes (a benchmark, not a test).

    python -m bench.ingest_soak [--seconds 600] [--rate 3000] [--burst-rate 20000] [--burst-seconds 10]

Two processes. The fakes process (``bench.soak_fakes``, started by this one) runs the fake server of
every venue (``tests.ingestor.fakes``: each venue's protocol and frame format, HTX gzip-compressed)
and streams recorded-style frames round-robin over the venues at ``--rate`` frames/s combined, with
a burst at ``--burst-rate`` halfway through; each frame's event time is its send time. This process
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

What it does not cover: the processor and gateway (``up``), hence no frame → websocket latency:
``bench.live_soak`` measures that through ``cryptopulse up --source live``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from collections import Counter
from typing import Any

from bench.soak_fakes import (
    SUBSCRIPTIONS,
    FakesProcess,
    accounting_lines,
    add_rate_arguments,
    bucket_quantile,
    labelled,
    rss_lines,
    rss_mib,
)
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


async def ingest(fakes: FakesProcess, kafka: KafkaSettings, sample: float) -> None:
    queue: asyncio.Queue[RawFrame] = asyncio.Queue(10_000)
    timing = Timing(ping_interval=None)
    adapters = registry.venues(load_instruments)
    connections = [Connection(adapters[venue], planned, queue, timing, url_override=f"ws://127.0.0.1:{port}")
                   for venue, port in fakes.ports.items()
                   for planned in plan_connections(adapters[venue], SUBSCRIPTIONS[venue])]
    per_venue = Counter(connection.venue.id for connection in connections)
    publisher = Publisher(kafka)
    await publisher.start()
    ingestor = Ingestor(Pipeline(adapters), publisher, clock=lambda: int(time.time() * 1000))
    stop = asyncio.Event()
    run = asyncio.create_task(ingestor.run(frames_of(connections, queue), stop))
    fakes.go()
    done = asyncio.get_running_loop().run_in_executor(None, fakes.report)
    rss: list[tuple[float, float]] = []
    started = time.monotonic()
    while not done.done():
        rss.append((time.monotonic() - started, rss_mib()))
        await asyncio.wait({done}, timeout=sample)
    report = done.result()
    deadline = time.monotonic() + 60                 # let the ingestor catch up with what was sent
    served = report["served"]
    while time.monotonic() < deadline and ingestor.frames < sum(served[v] * per_venue[v] for v in served):
        await asyncio.sleep(0.2)
    stop.set()
    summary = await run
    await publisher.stop()
    _print(report, per_venue, summary, rss)


def _print(report: dict[str, Any], per_venue: Counter[str], summary: Any, rss: list[tuple[float, float]]) -> None:
    for line in accounting_lines(report, per_venue, labelled(metrics.FRAMES.collect(), "venue", "outcome")):
        print(line)
    print(f"pipeline: {dict(summary.outcomes)}")
    print(f"published (acknowledged): {summary.published}; unacknowledged {summary.unacknowledged}, "
          f"publish errors {summary.publish_errors}")
    lag, publish = metrics.EVENT_LAG.collect(), metrics.PUBLISH_LATENCY.collect()
    print(f"event lag (send -> receipt) p50 {bucket_quantile(lag, 0.5):g} s, "
          f"p99 {bucket_quantile(lag, 0.99):g} s; publish latency (buffered -> acked) "
          f"p50 {bucket_quantile(publish, 0.5):g} s, p99 {bucket_quantile(publish, 0.99):g} s "
          "(bucket upper bounds)")
    for line in rss_lines("ingestor (this process)", rss):
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_rate_arguments(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    clients = sum(len(plan_connections(registry.get(venue, load_instruments(venue)), subscription))
                  for venue, subscription in SUBSCRIPTIONS.items())
    with EmbeddedBroker(port=free_port()) as broker, FakesProcess(args, clients) as fakes:
        asyncio.run(create_topics(broker.bootstrap))
        kafka = broker.client_settings()
        asyncio.run(ingest(fakes, kafka, args.sample))


if __name__ == "__main__":
    main()
