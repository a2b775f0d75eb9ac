"""The ingest service: a source of frames -> :class:`Pipeline` -> :class:`Publisher`.

One task reads the source and feeds the pipeline; publishing awaits when the producer buffer is
full, which pauses the source (backpressure). A timer closes micro-bars whose interval elapsed.
On a stop request the source is cancelled, open bars are closed, and everything queued is
flushed (bounded wait) before returning. The pipeline only counts what happened; its tally is
taken on every bar tick, every ``TALLY_EVENTS`` events and at the end, and turned into metrics
and log lines here (:class:`TallyObserver`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from services.common.frames import RawFrame
from services.common.settings import KafkaSettings
from services.ingestor.dedupe import Deduper
from services.ingestor.observer import TallyObserver
from services.ingestor.pipeline import DEADLETTER, Pipeline, Record
from services.ingestor.producer import Publisher
from services.ingestor.settings import IngestorSettings
from services.ingestor.sources import Unreadable
from services.ingestor.venues.base import Venue

log = logging.getLogger("cryptopulse.ingestor")

Source = AsyncIterator[RawFrame | Unreadable]
TALLY_EVENTS = 4096


@dataclass
class Summary:
    frames: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    published: dict[str, int] = field(default_factory=dict)
    publish_errors: int = 0
    unacknowledged: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        events = self.outcomes.get("trades", 0) + self.outcomes.get("liquidations", 0)
        return (f"{self.frames} frames ({self.outcomes.get('ok', 0)} ok, {self.outcomes.get('ignored', 0)} "
                f"ignored, {self.outcomes.get(DEADLETTER, 0)} dead letters), {events} events "
                f"({self.outcomes.get('trades', 0)} trades, {self.outcomes.get('liquidations', 0)} liquidations, "
                f"{self.outcomes.get('duplicates', 0)} duplicates dropped, {self.outcomes.get('gaps', 0)} gaps), "
                f"{self.outcomes.get('bars', 0)} bars, {sum(self.published.values())} messages acknowledged, "
                f"{self.publish_errors} publish errors, in {self.seconds:.1f} s")


def build_pipeline(settings: IngestorSettings, venues: Mapping[str, Venue]) -> Pipeline:
    dedupe = Deduper(settings.dedupe_capacity, int(settings.dedupe_window_seconds * 1000))
    return Pipeline(venues, max_frame_bytes=settings.max_frame_bytes, keep_raw=settings.keep_raw_frame,
                    dedupe=dedupe, bar_interval_ms=settings.bar_interval_ms)


def build_publisher(settings: IngestorSettings, kafka: KafkaSettings, **overrides: object) -> Publisher:
    return Publisher(kafka, buffer_limit=settings.producer_buffer_messages, chunk=settings.producer_chunk_messages,
                     inflight=settings.producer_inflight_chunks,
                     retry_backoff_max=settings.producer_retry_backoff_max, **overrides)


class Ingestor:
    def __init__(self, pipeline: Pipeline, publisher: Publisher, *, bar_interval_ms: int = 250,
                 clock: Callable[[], int] | None = None, flush_timeout: float = 5.0,
                 observer: TallyObserver | None = None) -> None:
        self.pipeline = pipeline
        self.observer = observer or TallyObserver()
        self.publisher = publisher
        self.bar_interval_ms = bar_interval_ms
        self.clock = clock          # None: bars close on the recorded receipt clock (replay, scenario)
        self.flush_timeout = flush_timeout
        self.frames = 0

    async def _consume(self, source: Source) -> None:
        pipeline, publish = self.pipeline, self.publisher.publish
        async for item in source:
            self.frames += 1
            if isinstance(item, Unreadable):
                record = pipeline.dead_letter(item.source, item.raw, "invalid_recording", item.reason, item.ts_recv)
                pipeline.stats[DEADLETTER] += 1
                await publish((record,))
                continue
            records = pipeline.process(item)
            if pipeline.tally.events >= TALLY_EVENTS:
                self.observe()
            if records:
                await publish(records)

    def observe(self) -> None:
        """Metrics and log lines for what the pipeline did since the last call."""
        self.observer.apply(self.pipeline.take_tally())

    async def _bar_timer(self) -> None:
        interval = max(self.bar_interval_ms, 10) / 2000.0
        while True:
            await asyncio.sleep(interval)
            self.observe()
            records = self.pipeline.due_bars(self.clock() if self.clock else None)
            if records:
                await self.publisher.publish(records)

    async def run(self, source: Source, stop: asyncio.Event, reference: Iterable[Record] = ()) -> Summary:
        """Publish ``reference`` records, then the source until it ends or ``stop`` is set."""
        started = time.monotonic()
        await self.publisher.publish(reference)
        consume = asyncio.create_task(self._consume(source), name="consume")
        timer = asyncio.create_task(self._bar_timer(), name="bars")
        stopper = asyncio.create_task(stop.wait(), name="stop")
        try:
            await asyncio.wait({consume, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (consume, timer, stopper):
                task.cancel()
            results = await asyncio.gather(consume, timer, stopper, return_exceptions=True)
        self.observe()
        if isinstance(results[0], Exception):
            raise results[0]
        await self.publisher.publish(self.pipeline.close())
        if not stop.is_set():   # a finite source ended: wait for every acknowledgement, or a stop request
            flushed = asyncio.create_task(self.publisher.flush())
            stopped = asyncio.create_task(stop.wait())
            _, pending = await asyncio.wait((flushed, stopped), return_when=asyncio.FIRST_COMPLETED)
            for waiting in pending:
                waiting.cancel()
        if not await self.publisher.flush(self.flush_timeout):
            log.error("%d records not acknowledged by Kafka within %.0f s of the stop request",
                      self.publisher.pending, self.flush_timeout)
        return self.summary(time.monotonic() - started)

    def summary(self, seconds: float = 0.0) -> Summary:
        return Summary(frames=self.frames, outcomes=dict(self.pipeline.stats), published=dict(self.publisher.acked),
                       publish_errors=self.publisher.errors, unacknowledged=self.publisher.pending,
                       seconds=seconds)
