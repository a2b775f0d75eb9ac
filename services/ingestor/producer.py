"""Batched, keyed, bounded Kafka publishing that never drops a record silently.

Records ``(topic, key, value)`` go into a buffer bounded by ``buffer_limit`` *unacknowledged*
records: :meth:`Publisher.publish` awaits while it is full, which pauses whoever feeds it (the
sources). A sender task takes chunks of the buffer, partitions them with Kafka's default
murmur2 partitioner on the key, appends them to one aiokafka batch per (topic, partition) and
hands the batches over with ``send_batch`` (no per-message future). Up to ``inflight`` chunks
await their acknowledgements at once. A batch that fails is counted, logged and put back at the
front of the buffer after a capped backoff: retried until Kafka acknowledges it (``acks=all``).
A record that retrying cannot cure (larger than the request limit, invalid topic; see
:data:`POISON`) is isolated by resending its batch one record per request, then published as a
dead letter instead; a dead letter that is itself refused is logged with its content and dropped.
Both are counted in ``cryptopulse_ingestor_publish_errors_total``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    CorruptRecordException,
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
)
from aiokafka.partitioner import DefaultPartitioner

from services.common.codec import dead_letter
from services.common.errors import StartupError
from services.common.kafka import producer_kwargs
from services.common.settings import KafkaSettings
from services.common.topics import DEADLETTER
from services.ingestor import metrics
from services.ingestor.pipeline import Record, encode

log = logging.getLogger("cryptopulse.ingestor.producer")

_Pending = tuple[Record, float]   # record, enqueue time (monotonic)
PARTITION_CACHE_LIMIT = 100_000
# Errors that retrying the same record cannot cure (everything else is retried until acknowledged).
POISON = (MessageSizeTooLargeError, RecordListTooLargeError, InvalidTopicError, CorruptRecordException)
SOURCE = "ingestor"
RECORD_OVERHEAD = 512   # request, batch and record headers around a record's key and value
REJECTED = "rejected"
FULL_LOG_INTERVAL = 10.0


class Publisher:
    def __init__(self, kafka: KafkaSettings, *, buffer_limit: int = 200_000, chunk: int = 16_384,
                 inflight: int = 4, retry_backoff_max: float = 5.0, **producer_overrides: Any) -> None:
        self.buffer_limit = max(1, buffer_limit)
        self.chunk = max(1, chunk)
        self.retry_backoff_max = retry_backoff_max
        self._kwargs = producer_kwargs(kafka, **producer_overrides)
        self.idempotent = bool(self._kwargs.get("enable_idempotence"))
        self._max_record = int(self._kwargs.get("max_request_size", 1_048_576)) - RECORD_OVERHEAD
        self.producer = AIOKafkaProducer(**self._kwargs)
        self.partitioner = DefaultPartitioner()
        self.acked: collections.Counter[str] = collections.Counter()
        self.errors = 0
        self._queue: collections.deque[_Pending] = collections.deque()
        self._unacked = 0                 # queued + in flight
        self._space = asyncio.Event()
        self._work = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._inflight = asyncio.Semaphore(max(1, inflight))
        self._partitions: dict[str, list[int]] = {}
        self._partition_of: dict[tuple[str, bytes], int] = {}
        self._sender: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._failures_in_a_row = 0
        self._singly = 0                  # records at the queue's front to send one per request
        self.dropped = 0
        self._full_logged = -FULL_LOG_INTERVAL
        self.overflows = 0

    async def start(self) -> None:
        """Start the client. Idempotence is used where the broker supports it: a broker that refuses
        InitProducerId (the embedded Tansu) gets a plain acks=all producer, with a warning."""
        try:
            await self.producer.start()
        except KafkaError as exc:
            await self.producer.stop()
            if not self.idempotent:
                raise StartupError(f"Kafka producer failed to start: {type(exc).__name__}: {exc}") from exc
            log.warning("the broker refused an idempotent producer (%s); continuing without idempotence "
                        "(at-least-once; set CRYPTOPULSE_KAFKA_IDEMPOTENCE=false to skip this attempt)",
                        type(exc).__name__)
            self.idempotent = False
            self.producer = AIOKafkaProducer(**{**self._kwargs, "enable_idempotence": False})
            try:
                await self.producer.start()
            except KafkaError as again:
                await self.producer.stop()
                raise StartupError(f"Kafka producer failed to start: {type(again).__name__}: {again}") from again
        self._sender = asyncio.create_task(self._send_loop(), name="publisher")

    async def publish(self, records: Iterable[Record]) -> None:
        """Queue ``records``; waits (backpressure) while ``buffer_limit`` records are unacknowledged."""
        now = time.monotonic()
        for record in records:
            while self._unacked >= self.buffer_limit:
                self._on_full()
                self._space.clear()
                await self._space.wait()
            self._queue.append((record, now))
            self._unacked += 1
        if self._unacked:
            self._idle.clear()
        metrics.PRODUCER_BUFFER.set(self._unacked)
        self._work.set()

    def _on_full(self) -> None:
        metrics.PRODUCER_OVERFLOW.inc()
        self.overflows += 1
        now = time.monotonic()
        if now - self._full_logged >= FULL_LOG_INTERVAL:
            self._full_logged = now
            log.warning("producer buffer full (%d unacknowledged): pausing sources until Kafka catches up (logged at most every 10 s; counted)",
                        self._unacked)

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued record is acknowledged; False on timeout."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    @property
    def pending(self) -> int:
        return self._unacked

    async def stop(self, timeout: float = 10.0) -> bool:
        """Flush (up to ``timeout``), then stop the sender and the client. True if nothing was left."""
        flushed = await self.flush(timeout)
        if not flushed:
            log.error("stopping with %d records not acknowledged by Kafka", self._unacked)
        if self._sender:
            self._sender.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*(t for t in (self._sender, *self._tasks) if t), return_exceptions=True)
        await self.producer.stop()
        return flushed

    async def _partitions_of(self, topic: str) -> list[int]:
        known = self._partitions.get(topic)
        if known is None:
            known = self._partitions[topic] = sorted(await self.producer.partitions_for(topic))
        return known

    async def _send_loop(self) -> None:
        while True:
            if not self._queue:
                self._work.clear()
                await self._work.wait()
                continue
            await self._inflight.acquire()
            singly = self._singly > 0
            take = min(self._singly or self.chunk, len(self._queue))
            self._singly -= min(self._singly, take)
            chunk = [self._queue.popleft() for _ in range(take)]
            try:
                futures = await self._dispatch(chunk, singly=singly)
            except (KafkaError, OSError) as exc:
                self._inflight.release()
                await self._failed(chunk, exc)
                continue
            task = asyncio.create_task(self._await_acks(futures))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _dispatch(self, chunk: list[_Pending], singly: bool = False
                        ) -> list[tuple[asyncio.Future[Any], list[_Pending]]]:
        """Append the chunk to one batch per (topic, partition) and hand each batch to aiokafka
        (``singly``: one record per request, to find the record a batch was rejected for)."""
        groups: dict[tuple[str, int], list[_Pending]] = {}
        cache = self._partition_of
        if len(cache) > PARTITION_CACHE_LIMIT:
            cache.clear()
        limit = self._max_record
        for pending in chunk:
            topic, key, value = pending[0]
            if len(value) + len(key) > limit:   # a batch would take it; Kafka would refuse it
                self._reject(pending, MessageSizeTooLargeError(f"{len(value)} bytes > max_request_size"))
                continue
            partition = cache.get((topic, key))
            if partition is None:   # murmur2 in pure Python is slow; keys (instruments, assets) repeat
                partitions = self._partitions.get(topic) or await self._partitions_of(topic)
                partition = cache[(topic, key)] = self.partitioner(key, partitions, partitions)
            groups.setdefault((topic, partition), []).append(pending)
        futures: list[tuple[asyncio.Future[Any], list[_Pending]]] = []
        for (topic, partition), items in groups.items():
            start = 0
            while start < len(items):
                batch = self.producer.create_batch()
                end = start
                while end < len(items):
                    _, key, value = items[end][0]
                    if batch.append(key=key, value=value, timestamp=None) is None:
                        break
                    end += 1
                if end == start or singly:   # one record on its own (larger than a batch, or isolating)
                    _, key, value = items[start][0]
                    end = start + 1
                    try:
                        future = await self.producer.send(topic, value=value, key=key, partition=partition)
                    except POISON as exc:   # refused before sending (e.g. larger than max_request_size)
                        self._reject(items[start], exc)
                        start = end
                        continue
                else:
                    batch.close()
                    future = await self.producer.send_batch(batch, topic, partition=partition)
                futures.append((future, items[start:end]))
                start = end
        return futures

    async def _await_acks(self, futures: list[tuple[asyncio.Future[Any], list[_Pending]]]) -> None:
        try:
            failed: list[_Pending] = []
            error: BaseException | None = None
            for future, items in futures:
                try:
                    await future
                except POISON as exc:
                    if len(items) == 1:
                        self._reject(items[0], exc)
                    else:   # resend one by one to find the record Kafka refuses
                        self._queue.extendleft(reversed(items))
                        self._singly += len(items)
                        self._work.set()
                    continue
                except (KafkaError, OSError) as exc:
                    failed.extend(items)
                    error = exc
                    continue
                self._acked(items)
            if failed and error is not None:
                await self._failed(failed, error)
            else:
                self._failures_in_a_row = 0
        finally:
            self._inflight.release()

    def _acked(self, items: list[_Pending]) -> None:
        now = time.monotonic()
        topic = items[0][0][0]
        self.acked[topic] += len(items)
        metrics.PUBLISHED.labels(topic).inc(len(items))
        metrics.PUBLISH_LATENCY.observe(now - items[0][1])
        self._unacked -= len(items)
        self._settle()

    def _settle(self) -> None:
        metrics.PRODUCER_BUFFER.set(self._unacked)
        if self._unacked < self.buffer_limit:
            self._space.set()
        if self._unacked == 0:
            self._idle.set()

    def _reject(self, pending: _Pending, exc: BaseException) -> None:
        """A record Kafka will never accept: it becomes a dead letter (a refused dead letter is
        logged with its content and dropped); counted either way, never retried forever."""
        (topic, key, value), enqueued = pending
        self.errors += 1
        metrics.PUBLISH_ERRORS.inc()
        self._unacked -= 1
        reason = f"{REJECTED}: Kafka refused a record for {topic} ({type(exc).__name__})"
        if topic == DEADLETTER.name:
            self.dropped += 1
            log.error("%s; dropping this dead letter (key %r, %d bytes): %r", reason, key, len(value), value[:500])
        else:
            log.error("%s; publishing it as a dead letter instead", reason)
            metrics.DEADLETTERS.labels(SOURCE, REJECTED).inc()
            keep = self._max_record // 2
            if len(value) > keep:   # the letter must fit where the record did not
                reason += f"; raw truncated to its first {keep} of {len(value)} bytes"
                value = value[:keep]
            letter = dead_letter(SOURCE, value, reason)
            self._queue.appendleft(((DEADLETTER.name, SOURCE.encode(), encode(letter)), enqueued))
            self._unacked += 1
            self._work.set()
        self._settle()

    async def _failed(self, items: list[_Pending], exc: BaseException) -> None:
        """Count, log, back off (capped, doubling) and put the records back at the front."""
        self.errors += 1
        self._failures_in_a_row += 1
        metrics.PUBLISH_ERRORS.inc()
        delay = min(self.retry_backoff_max, 0.1 * 2 ** min(self._failures_in_a_row, 10))
        log.warning("publishing %d records failed (%s: %s); retrying in %.1f s",
                    len(items), type(exc).__name__, exc, delay)
        self._partitions.clear()   # the cluster may have changed (restart, new partitions)
        self._partition_of.clear()
        await asyncio.sleep(delay)
        self._queue.extendleft(reversed(items))
        self._work.set()
