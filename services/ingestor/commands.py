"""The ingestor's commands (``ingest``, ``replay``, ``record``); parsers are declared in :mod:`.cli`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson

from services.common.frames import RawFrame
from services.common.kafka import wait_for_kafka
from services.common.logs import setup_logging
from services.common.metrics import serve_metrics
from services.common.procs import stop_event
from services.common.settings import KafkaSettings, load
from services.ingestor.journal import Journal, JournalSettings, journaled
from services.ingestor.pipeline import Record
from services.ingestor.service import Source
from services.ingestor.settings import IngestorSettings
from services.ingestor.sources import (
    RecordingWriter,
    SourceError,
    open_plugged,
    paced,
    parse_speed,
    plugged,
    read_recording,
    replay_path,
)

log = logging.getLogger("cryptopulse.ingestor")


def select_venues(settings: IngestorSettings) -> list[Any]:
    """The adapters named by ``ingest_venues`` (all when empty), each built with its venue's instrument
    table (the snapshot, or its live refresh when that ran first), with their subscriptions."""
    from services.ingestor.instruments import load_instruments
    from services.ingestor.venues.base import Subscription
    from services.ingestor.venues.registry import get, venue_ids

    known = venue_ids()
    wanted = settings.ingest_venues or known
    unknown = [v for v in wanted if v not in known]
    if unknown:
        raise SourceError(f"unknown venue(s) {', '.join(unknown)}; known: {', '.join(known)}")
    chosen = []
    for venue_id in wanted:
        instruments = load_instruments(venue_id)
        symbols = [s for s in settings.ingest_symbols if s in instruments] if settings.ingest_symbols else [
            s for s, inst in instruments.items() if inst.listed]
        chosen.append((get(venue_id, instruments), Subscription(trades=tuple(symbols))))
    return chosen


def source_status(source: str, description: str) -> Record:
    """The ``reference:ingest`` status record: which kind of source feeds the stack (scenario, replay,
    live), for clients such as the dashboard."""
    from services.common import topics

    kind = "replay" if replay_path(source) is not None else source
    value = {"kind": "ingest", "source": kind, "description": description, "ts": time.time_ns() // 1_000_000}
    return topics.REFERENCE_STATUS.name, b"ingest", orjson.dumps(value)


def seeded_venues(settings: IngestorSettings) -> tuple[str, ...]:
    """Venues whose per-venue series are exported from start-up. Live: only the venues ingested (a
    venue not in use must not look stalled or down); a finite source (scenario, replay) may carry any."""
    from services.ingestor.venues.registry import venue_ids

    if settings.ingest_source == "live":
        return tuple(settings.ingest_venues or venue_ids())
    return venue_ids()


def _timing(settings: IngestorSettings) -> Any:
    from services.ingestor.runtime import Timing

    stale = {name: value for name, value in (("trades", settings.stale_trades_seconds),
                                             ("liquidations", settings.stale_liquidations_seconds))
             if value is not None}
    return Timing(backoff_initial=settings.reconnect_backoff_initial, backoff_max=settings.reconnect_backoff_max,
                  connect_timeout=settings.connect_timeout, stale_after=stale,
                  rotate_after=settings.rotate_after_seconds)


async def _live_source(settings: IngestorSettings) -> AsyncIterator[RawFrame]:
    from services.ingestor.refresh import refresh_from_rest
    from services.ingestor.runtime import live_frames

    if settings.ingest_refresh_instruments and not settings.venue_url_override:
        from services.ingestor.venues.registry import adapter_class, venue_ids

        for venue_id in settings.ingest_venues or venue_ids():
            await asyncio.to_thread(refresh_from_rest, adapter_class(venue_id))
    return live_frames(select_venues(settings), _timing(settings), url_override=settings.venue_url_override)


async def open_source(settings: IngestorSettings,
                      density: float | None = None) -> tuple[Source, list[Record], str]:
    """(frames, reference records to publish first, description) for ``ingest_source``."""
    source = settings.ingest_source
    speed = parse_speed(settings.replay_speed)
    path = replay_path(source)
    if path is not None:
        if not path.is_file():
            raise SourceError(f"recording {path} does not exist (--source replay:PATH)")
        return paced(read_recording(path), speed), [], f"replay of {path} at speed {settings.replay_speed}"
    if source in plugged():
        opened = open_plugged(source, settings, density=density)
        reference = [(topic.name, key.encode(), orjson.dumps(value))
                     for topic, key, value in opened.reference_records()]
        return paced(opened.frames(), speed), reference, opened.describe()
    if source == "live":
        return await _live_source(settings), [], "live exchange websockets"
    raise SourceError(f"unknown source {source!r}: use {', '.join((*plugged(), 'replay:PATH'))} or live")


async def ingest(settings: IngestorSettings, kafka: KafkaSettings, metrics_port: int | None = None,
                 density: float | None = None) -> int:
    from services.ingestor.instruments import load_instruments
    from services.ingestor.service import Ingestor, build_pipeline, build_publisher
    from services.ingestor.venues.registry import venues

    frames, reference, description = await open_source(settings, density)
    journal_dir = load(JournalSettings).journal_dir
    if settings.ingest_source == "live" and journal_dir:
        frames = journaled(frames, Journal(Path(journal_dir)))
        description += f", journal {journal_dir}"
    reference.append(source_status(settings.ingest_source, description))
    await wait_for_kafka(kafka)
    if metrics_port is not None:
        from services.common import topics
        from services.ingestor import metrics
        from services.ingestor.venues.base import REASON_CLASSES

        metrics.init_series(seeded_venues(settings), REASON_CLASSES,
                            tuple(t.name for t in (topics.TRADES, topics.LIQUIDATIONS, topics.TRADE_BARS,
                                                   topics.TRADE_GAPS, topics.DEADLETTER, topics.CANDLE_HISTORY)))
        serve_metrics(metrics_port, service="ingestor")
    stop = stop_event()
    publisher = build_publisher(settings, kafka)
    await publisher.start()
    live = settings.ingest_source == "live"
    pipeline = build_pipeline(settings, venues(load_instruments))
    ingestor = Ingestor(pipeline, publisher, bar_interval_ms=settings.bar_interval_ms,
                        clock=(lambda: time.time_ns() // 1_000_000) if live else None)
    log.info("ingesting: %s", description)
    try:
        summary = await ingestor.run(frames, stop, reference)
        log.info("source %s: %s", "stopped" if stop.is_set() else "ended", summary.line())
        if settings.hold and not stop.is_set():
            if metrics_port is not None:
                from services.ingestor import metrics

                metrics.SOURCE_FINISHED.set(1)
            log.info("holding (serving metrics) until stopped; CRYPTOPULSE_HOLD=false exits instead")
            await stop.wait()
    finally:
        # On SIGTERM/SIGINT the run already flushed for up to 5 s; a stop must stay quick.
        flushed = await publisher.stop(timeout=2.0 if stop.is_set() else 30.0)
    return 0 if flushed or stop.is_set() else 1


def _cmd_ingest(args: argparse.Namespace) -> int:
    from services.common.cli_flags import kafka_settings

    kafka = kafka_settings(args)
    settings = load(IngestorSettings, ingest_source=args.source, replay_speed=args.speed, hold=args.hold,
                    ingest_venues=tuple(args.venues) if args.venues else None,
                    ingestor_metrics_port=args.metrics_port)
    setup_logging(kafka.log_level, "ingestor")
    return asyncio.run(ingest(settings, kafka, settings.ingestor_metrics_port, getattr(args, "density", None)))


def _cmd_replay(args: argparse.Namespace) -> int:
    args.source = f"replay:{args.file}"
    return _cmd_ingest(args)


async def record(settings: IngestorSettings, out: Path, seconds: float | None, max_frames: int | None) -> int:
    frames = await _live_source(settings)
    writer = RecordingWriter(out)
    stop = stop_event()
    deadline = time.monotonic() + seconds if seconds else None

    async def copy() -> None:
        async for frame in frames:
            writer.write(frame)
            if max_frames is not None and writer.count >= max_frames:
                return

    task = asyncio.create_task(copy())
    waiter = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, waiter}, timeout=deadline - time.monotonic() if deadline else None,
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        task.cancel()
        waiter.cancel()
        await asyncio.gather(task, waiter, return_exceptions=True)
        await frames.aclose()  # type: ignore[attr-defined]
        writer.close()
    log.info("recorded %d frames to %s", writer.count, out)
    return 0


def _cmd_record(args: argparse.Namespace) -> int:
    from services.common.cli_flags import kafka_settings

    kafka = kafka_settings(args)
    settings = load(IngestorSettings, ingest_source="live", ingest_venues=tuple(args.venues) if args.venues else None,
                    ingest_symbols=tuple(args.symbols) if args.symbols else None)
    setup_logging(kafka.log_level, "ingestor")
    return asyncio.run(record(settings, Path(args.out), args.seconds, args.frames))
