"""Ingest end to end as a user runs it: frames in -> records acknowledged by the broker, per CPU-second.

    python -m bench.ingest_e2e [--frames N]

Side by side on the same recorded-style frames of each venue (``tests.ingestor.fakes.samples``;
HTX frames gzip-compressed as HTX sends them) and the same embedded broker: the ingestor's
pipeline (adapter, dedupe, gaps, micro-bars, records) and :class:`Publisher` (acks=all), vs
cryptofeed's feed handler with its own Kafka backend (``TradeKafka``/``LiquidationsKafka``,
aiokafka, acks=all) in its own venv (``CRYPTOFEED_PYTHON``, as for ``bench.ingest_parse``).
The clock of each side stops when every record it produced is acknowledged. CPU time is the
client process's (the broker runs in its own process for both). Target: >= 5x cryptofeed in
frames per CPU-second. The machine is shared: read the ratios, not the absolute rates.

The ingestor publishes more per frame than cryptofeed: trades, liquidations and micro-bars
(``records`` counts them all); cryptofeed publishes one record per trade or liquidation.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import logging
import os
import subprocess
import tempfile
import time
from pathlib import Path

import orjson

from services.common import topics
from services.common.broker import EmbeddedBroker, free_port
from services.common.frames import RawFrame
from services.common.kafka import create_topics
from services.common.settings import KafkaSettings
from services.ingestor.instruments import load_instruments
from services.ingestor.pipeline import Pipeline
from services.ingestor.producer import Publisher
from services.ingestor.venues import registry
from tests.ingestor.fakes.samples import BASE_TS, CONTROL_FRAMES, recorded_frames

CHILD = Path(__file__).with_name("ingest_e2e_cryptofeed.py")
VENUES = ("binance-usdm", "bybit", "okx", "bitmex", "deribit", "gate", "binance-coinm", "kraken-futures", "htx",
          "coinbase", "hyperliquid")


async def ours(kafka: KafkaSettings, venue: str, frames: list[str]) -> dict[str, float]:
    """Frames of one venue through a fresh pipeline into the broker; every record acknowledged."""
    adapter = registry.get(venue, load_instruments(venue))
    inflate = getattr(adapter, "frame_text", None)
    wire = [gzip.compress(f.encode(), mtime=0) for f in frames] if inflate else frames
    pipeline, publisher = Pipeline({venue: adapter}), Publisher(kafka)
    await publisher.start()
    try:
        records = 0
        wall, cpu = time.perf_counter(), time.process_time()
        for i, message in enumerate(wire):
            text = inflate(message) if inflate else message   # as the runtime hands frames over
            out = pipeline.process(RawFrame(venue, text, BASE_TS + i + 40))  # type: ignore[arg-type]
            if out:
                records += len(out)
                await publisher.publish(out)
        tail = pipeline.close()
        records += len(tail)
        await publisher.publish(tail)
        assert await publisher.flush(300), "not every record was acknowledged"
        return {"cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall, "frames": len(frames),
                "records": records}
    finally:
        await publisher.stop()


def cryptofeed(python: str, frames_by_venue: dict[str, list[str]], bootstrap: str) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "frames.json"
        path.write_bytes(orjson.dumps(frames_by_venue))
        proc = subprocess.run([python, str(CHILD), str(path), bootstrap, topics.TRADES.name,
                               topics.LIQUIDATIONS.name], capture_output=True, text=True, timeout=1800, check=False)
    if proc.returncode != 0:
        print(f"cryptofeed: child failed ({proc.returncode}): {proc.stderr.strip()[-600:]}")
        return {}
    result: dict[str, dict[str, float]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=2000, help="frames per venue")
    args = parser.parse_args()
    logging.getLogger("cryptopulse").setLevel(logging.ERROR)   # the samples' per-symbol id gaps are logged
    frames_by_venue = {venue: [f for f in recorded_frames(venue, args.frames) if f not in CONTROL_FRAMES[venue]]
                       for venue in VENUES}
    python = os.environ.get("CRYPTOFEED_PYTHON")
    with EmbeddedBroker(port=free_port()) as broker:
        asyncio.run(create_topics(broker.bootstrap))
        kafka = broker.client_settings()
        mine = {venue: asyncio.run(ours(kafka, venue, frames)) for venue, frames in frames_by_venue.items()}
        theirs = cryptofeed(python, frames_by_venue, broker.bootstrap) if python else {}
    print(f"{args.frames} recorded-style frames per venue (control frames left out), one embedded broker; "
          "frames and records per CPU-second of the client process")
    print(f"{'venue':<15} {'records':>8} {'frames/cpu-s':>13} {'recs/cpu-s':>11} {'wall s':>7} | "
          f"{'cf records':>10} {'cf frames/cpu-s':>15} {'cf wall s':>9} | {'frames/cpu-s vs cf':>18}")
    for venue, m in mine.items():
        line = (f"{venue:<15} {m['records']:>8.0f} {m['frames'] / m['cpu']:>13,.0f} {m['records'] / m['cpu']:>11,.0f} "
                f"{m['wall']:>7.2f} | ")
        c = theirs.get(venue)
        if c:
            line += (f"{c['records']:>10.0f} {c['frames'] / c['cpu']:>15,.0f} {c['wall']:>9.2f} | "
                     f"{(m['frames'] / m['cpu']) / (c['frames'] / c['cpu']):>17.1f}x")
            if c.get("errors"):
                line += f" (cryptofeed logged {c['errors']:.0f} send errors)"
        else:
            line += f"{'-':>10} {'n/a' if python else 'skipped':>15} {'-':>9} | {'-':>18}"
        print(line)
    if not python:
        print("cryptofeed: skipped (set CRYPTOFEED_PYTHON)")


if __name__ == "__main__":
    main()
