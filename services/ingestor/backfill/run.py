"""The backfill's I/O shell: fetch the klines (throttled per venue, resumable), publish bars,
history candles and checkpoints, show progress.

Checkpoints live on ``cryptopulse.reference-status`` (so they go wherever the data goes: an
embedded broker restarted empty forgets both): ``backfill:history:1d`` / ``:1h`` hold the end of
the history published, ``backfill:1m`` the end of the last 1-minute chunk published, ``live`` the
first minute live trades cover. A run skips what a checkpoint says is published; a chunk that was
half published is published again, and its bars (deterministic ids) are counted once.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, Any

import orjson

from services.common import topics
from services.common.clock import now_ms
from services.common.compacted import publish, read_table, send_batched
from services.common.errors import StartupError
from services.common.events import USD_QUOTES
from services.common.http import HttpError
from services.common.kafka import make_producer
from services.common.settings import KafkaSettings
from services.ingestor.backfill.client import VenueClient, VenueDown, make_clients
from services.ingestor.backfill.klines import INTERVAL_MS, Kline
from services.ingestor.backfill.plan import (
    Ranges,
    bar,
    history_candles,
    instruments_for,
    merge_minutes,
    plan_ranges,
    price_ohlc,
    primary,
    windows,
)
from services.ingestor.backfill.progress import Progress
from services.ingestor.backfill.settings import BackfillSettings
from services.ingestor.instruments import load_instruments
from services.ingestor.venues.base import Instrument

log = logging.getLogger("cryptopulse.backfill")

LIVE_KEY = "live"


@dataclass
class Summary:
    ranges: Ranges
    instruments: int = 0
    history_candles: int = 0
    bars: int = 0
    requests: int = 0
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def line(self) -> str:
        text = (f"backfill: {self.instruments} instruments, {self.history_candles} history candles, "
                f"{self.bars} one-minute bars, {self.requests} requests")
        if self.seconds:
            text += " (" + ", ".join(f"{phase} {sec:.1f} s" for phase, sec in self.seconds.items()) + ")"
        if self.skipped:
            text += f"; already published: {', '.join(self.skipped)}"
        if self.unreachable:
            text += f"; unreachable: {', '.join(self.unreachable)}"
        if self.failed:
            text += f"; {len(self.failed)} failed: {', '.join(self.failed[:5])}{' ...' if len(self.failed) > 5 else ''}"
        return text


async def fetch_each(items: list[Instrument], fetch: Callable[[Instrument], Any], progress: Progress,
                  summary: Summary, what: str) -> dict[Instrument, list[Kline]]:
    """Fetch every instrument's klines concurrently; a failed instrument is reported and left out."""
    results: dict[Instrument, list[Kline]] = {}

    async def one(inst: Instrument) -> None:
        try:
            results[inst] = await fetch(inst)
        except HttpError as exc:
            summary.failed.append(f"{inst.venue}:{inst.symbol} {what}")
            progress.failed += 1
            if not isinstance(exc, VenueDown):
                log.warning("backfill %s %s %s failed: %s", inst.venue, inst.symbol, what, exc)
        progress.step()

    await asyncio.gather(*(one(inst) for inst in items))
    return results


async def _send(producer: Any, records: list[tuple[topics.Topic, str, dict[str, Any]]],
                checkpoint: tuple[topics.Topic, str, dict[str, Any]]) -> None:
    """Publish ``records`` (one topic) in batches, then, once they are acknowledged, the checkpoint."""
    if records:
        await send_batched(producer, records[0][0], [(key, value) for _, key, value in records])
    topic, key, value = checkpoint
    await (await producer.send(topic.name, key=key.encode(), value=orjson.dumps(value)))


def _checkpoint(kind: str, **values: Any) -> tuple[topics.Topic, str, dict[str, Any]]:
    return topics.REFERENCE_STATUS, kind, {"kind": kind, "ts": now_ms(), **values}


async def backfill(kafka: KafkaSettings, settings: BackfillSettings, now: int | None = None,
                   out: IO[str] = sys.stderr) -> Summary:
    """Run (or resume) the backfill; returns what was published."""
    assets = {a: r for a, r in (await read_table(kafka, topics.ASSETS)).items() if isinstance(r, dict)}
    if not assets:
        raise StartupError("no reference data on the assets topic: run `cryptopulse assets load` (or refresh) first")
    marks = await read_table(kafka, topics.REFERENCE_STATUS)
    live = marks.get(LIVE_KEY, {}).get("since") if isinstance(marks.get(LIVE_KEY), dict) else None
    ranges = plan_ranges(now_ms() if now is None else now, settings.backfill_minutes, settings.backfill_hours,
                         settings.backfill_days, live)
    fetch_now = now_ms() if now is None else now
    summary = Summary(ranges)
    progress = Progress(out)
    executor = ThreadPoolExecutor(max_workers=max(4, settings.backfill_concurrency * len(settings.backfill_venues)),
                                  thread_name_prefix="backfill")
    clients = make_clients(settings, executor)
    instruments = instruments_for({v: load_instruments(v) for v in clients}, assets, USD_QUOTES)
    summary.instruments = len(instruments)
    producer = make_producer(kafka)
    await producer.start()
    try:
        for interval, (start, end) in (("1d", ranges.days), ("1h", ranges.hours)):
            started = time.monotonic()
            await _history(producer, clients, instruments, assets, interval, start, end, fetch_now,
                           marks, progress, summary)
            summary.seconds[f"{interval} history"] = time.monotonic() - started
        started = time.monotonic()
        await _minutes(producer, clients, instruments, ranges, fetch_now, marks, settings, progress, summary)
        summary.seconds["1m bars"] = time.monotonic() - started
    finally:
        await producer.stop()
        executor.shutdown(wait=False, cancel_futures=True)
    summary.requests = sum(c.requests for c in clients.values())
    summary.unreachable = [venue for venue, c in clients.items() if c.down is not None]
    return summary


def _through(marks: dict[str, Any], key: str) -> int:
    mark = marks.get(key)
    return int(mark.get("through", 0)) if isinstance(mark, dict) else 0


async def _history(producer: Any, clients: dict[str, VenueClient], instruments: list[Instrument],
                   assets: dict[str, dict[str, Any]], interval: str, start: int, end: int, now: int,
                   marks: dict[str, Any], progress: Progress, summary: Summary) -> None:
    key = f"backfill:history:{interval}"
    if _through(marks, key) >= end:
        summary.skipped.append(f"{interval} history")
        return
    chosen = primary(instruments, tuple(clients))
    progress.start(f"{interval} history", len(chosen))
    fetched = await fetch_each(list(chosen.values()),
                            lambda inst: clients[inst.venue].klines(inst.symbol, interval, start, end, now),
                            progress, summary, interval)
    prices = {inst.base: price_ohlc(inst, klines) for inst, klines in fetched.items() if klines}
    candles = history_candles(interval, prices, assets)
    await _send(producer, [(topics.CANDLE_HISTORY, f"{c['series']}:{interval}", c) for c in candles],
                _checkpoint(key, through=end))
    summary.history_candles += len(candles)


async def _minutes(producer: Any, clients: dict[str, VenueClient], instruments: list[Instrument], ranges: Ranges,
                   now: int, marks: dict[str, Any], settings: BackfillSettings, progress: Progress,
                   summary: Summary) -> None:
    start, end = ranges.minutes
    resumed = max(start, _through(marks, "backfill:1m"))
    if resumed >= end:
        summary.skipped.append("1m bars")
        return
    chunks = windows(resumed, end, max(1, settings.backfill_chunk_minutes) * INTERVAL_MS["1m"])
    progress.start("1m bars", len(chunks) * len(instruments))

    def fetch(chunk: tuple[int, int]) -> asyncio.Task[dict[Instrument, list[Kline]]]:
        return asyncio.create_task(fetch_each(instruments, minute_fetcher(clients, *chunk, now), progress, summary, "1m"))

    pending = fetch(chunks[0])
    try:
        for i, (_a, b) in enumerate(chunks):
            fetched = await pending
            if i + 1 < len(chunks):
                pending = fetch(chunks[i + 1])        # the next chunk downloads while this one is published
            bars = merge_minutes([x for inst, klines in fetched.items() for x in (bar(inst, k) for k in klines)
                                  if x is not None])
            await _send(producer, [(topics.TRADE_BARS, x["base"], x) for x in bars],
                        _checkpoint("backfill:1m", through=b, start=start))
            summary.bars += len(bars)
    finally:
        if not pending.done():
            pending.cancel()


def minute_fetcher(clients: dict[str, VenueClient], start: int, end: int, now: int) -> Callable[[Instrument], Any]:
    def fetch(inst: Instrument) -> Any:
        return clients[inst.venue].klines(inst.symbol, "1m", start, end, now)

    return fetch


async def mark_live(kafka: KafkaSettings, since: int) -> int:
    """Record the first minute live trades cover, unless one is recorded (then that one stands:
    later backfills never publish a minute from it on). Returns the minute in force."""
    marks = await read_table(kafka, topics.REFERENCE_STATUS, prefix=LIVE_KEY)
    held = marks.get(LIVE_KEY)
    if isinstance(held, dict) and isinstance(held.get("since"), int):
        return int(held["since"])
    await publish(kafka, [_checkpoint(LIVE_KEY, since=since)])
    return since
