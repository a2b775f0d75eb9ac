"""Connection runtime: keep a venue's websocket subscriptions open forever.

Per connection: connect, send the subscribe frames at the venue's outbound message rate, read;
reconnect with capped exponential backoff and full jitter, without a retry limit; send the
venue's app-level heartbeat; reset a connection whose *trade* stream is silent longer than its
threshold (liquidation streams have a long one: quiet markets must not cause reconnect storms);
and rotate before the venue's connection lifetime ends by opening and subscribing the new
connection before closing the old one. The new connection holds its frames until the old one is
closed and drained, then hands them over: the pipeline's process-wide dedupe drops what both
delivered, so the rotation is lossless, duplicate-free and keeps trade ids in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from services.common.codec import now_ms
from services.common.frames import RawFrame
from services.common.settings import SettingsError, env_name
from services.ingestor import metrics
from services.ingestor.venues.base import Subscription, Venue

log = logging.getLogger("cryptopulse.ingestor.runtime")

TRADES, LIQUIDATIONS = "trades", "liquidations"


@dataclass(frozen=True)
class Timing:
    """Runtime timing; every value is injectable so tests run in seconds."""

    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    connect_timeout: float = 10.0
    check_interval: float = 1.0
    stale_after: Mapping[str, float] = field(default_factory=dict)   # overrides of the venue's thresholds
    rotate_after: float | None = None                                # override of the venue's lifetime
    ping_interval: float | None = 20.0                               # websocket-level pings we send
    rotation_overlap: float = 2.0    # both connections stream this long before the old one closes


def backoff_delay(attempt: int, initial: float, cap: float, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(cap, initial * 2**attempt)]."""
    return rng.uniform(0.0, min(cap, initial * 2 ** min(attempt, 30)))


def plan_connections(venue: Venue, subscription: Subscription) -> list[Subscription]:
    """Split a subscription into connections of at most ``max_streams_per_connection`` streams.

    The liquidation streams go on the first connection, or on one of their own for venues that
    serve them from another endpoint (``liquidations_apart``, e.g. HTX)."""
    per = max(1, venue.rules.max_streams_per_connection - 1)   # room for the all-market stream
    trades = subscription.trades
    chunks = [trades[i:i + per] for i in range(0, len(trades), per)] or [()]
    plans = [Subscription(trades=chunk, liquidations=(), all_liquidations=False) for chunk in chunks]
    if getattr(venue, "liquidations_apart", False):
        apart = Subscription(liquidations=subscription.liquidations, all_liquidations=subscription.all_liquidations)
        wanted = apart.liquidations or apart.all_liquidations
        return [plan for plan in plans if plan.trades] + ([apart] if wanted else [])
    first = plans[0]
    plans[0] = Subscription(trades=first.trades, liquidations=subscription.liquidations,
                            all_liquidations=subscription.all_liquidations)
    return plans


class StreamClock:
    """Last data time per channel of one connection, and which channel (if any) is stale."""

    def __init__(self, thresholds: Mapping[str, float], now: float) -> None:
        self.thresholds = dict(thresholds)
        self.last = dict.fromkeys(self.thresholds, now)

    def saw(self, channel: str | None, now: float) -> None:
        if channel is None:
            for name in self.last:
                self.last[name] = now
        elif channel in self.last:
            self.last[channel] = now

    def stale(self, now: float) -> str | None:
        for name, threshold in self.thresholds.items():
            if now - self.last[name] > threshold:
                return name
        return None


def _thresholds(venue: Venue, subscription: Subscription, overrides: Mapping[str, float]) -> dict[str, float]:
    configured = {**venue.rules.stale_after_seconds, **overrides}
    wanted: dict[str, float] = {}
    if subscription.trades:
        wanted[TRADES] = configured.get(TRADES, 60.0)
    if subscription.liquidations or subscription.all_liquidations:
        wanted[LIQUIDATIONS] = configured.get(LIQUIDATIONS, 3600.0)
    return wanted


class _Session:
    """One open websocket: its reader task pushes frames to the shared queue, or keeps them in
    ``hold`` while it is the new half of a rotation (released after the old one closed)."""

    def __init__(self, ws: ClientConnection, clock: StreamClock, hold: bool) -> None:
        self.ws = ws
        self.clock = clock
        self.frames = 0
        self.hold: list[RawFrame] | None = [] if hold else None
        self.reader: asyncio.Task[None] | None = None
        self.heartbeat: asyncio.Task[None] | None = None

    async def close(self, drain: float = 0.0) -> None:
        """Close; with ``drain`` the reader first gets that long to hand over what it received."""
        if self.heartbeat:
            self.heartbeat.cancel()
        if drain and self.reader:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), drain)
            await asyncio.wait({self.reader}, timeout=drain)
        for task in (self.heartbeat, self.reader):
            if task:
                task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 2.0)
        for task in (self.heartbeat, self.reader):
            if task:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task


class Connection:
    """Keeps one planned subscription of one venue streaming into ``out``."""

    def __init__(self, venue: Venue, subscription: Subscription, out: asyncio.Queue[RawFrame],
                 timing: Timing, *, url_override: str | None = None, rng: random.Random | None = None) -> None:
        self.venue = venue
        self.subscription = subscription
        self.out = out
        self.timing = timing
        self.url = venue.connect_url(subscription)
        if url_override:
            self.url = self.url.replace(venue.rules.url, url_override.rstrip("/"), 1)
        self.rng = rng or random.Random()
        self.thresholds = _thresholds(venue, subscription, timing.stale_after)
        self.channel_of: Callable[[str], str | None] | None = getattr(venue, "channel_of", None)
        # optional venue hooks: binary (e.g. gzip) messages to text; answers to the venue's own pings
        self.frame_text: Callable[[bytes], str] | None = getattr(venue, "frame_text", None)
        self.heartbeat_reply: Callable[[str], str | None] | None = getattr(venue, "heartbeat_reply", None)
        self.connects = 0
        self.reconnects = 0
        self.stale_resets = 0
        self.rotations = 0
        self._connections = metrics.CONNECTIONS.labels(venue.id)
        self._ignored = metrics.FRAMES.labels(venue.id, "ignored")

    async def _open(self, hold: bool = False) -> _Session:
        ws = await connect(self.url, open_timeout=self.timing.connect_timeout,
                           ping_interval=self.timing.ping_interval, max_size=None, compression=None)
        session = _Session(ws, StreamClock(self.thresholds, time.monotonic()), hold)
        try:
            pause = 1.0 / max(self.venue.rules.max_messages_per_second, 0.1)
            for count, frame in enumerate(self.venue.subscribe_frames(self.subscription)):
                if count:
                    await asyncio.sleep(pause)
                await ws.send(frame)
        except BaseException:
            await session.close()
            raise
        session.reader = asyncio.create_task(self._read(session))
        beat = self.venue.rules.heartbeat
        if beat.payload is not None:
            session.heartbeat = asyncio.create_task(self._beat(ws, beat.payload, beat.interval))
        self.connects += 1
        self._connections.inc()
        return session

    async def _read(self, session: _Session) -> None:
        is_pong, channel_of, out, venue_id = self.venue.rules.heartbeat.is_pong, self.channel_of, self.out, self.venue.id
        clock, frame_text, reply_to = session.clock, self.frame_text, self.heartbeat_reply
        try:
            async for message in session.ws:
                if isinstance(message, str):
                    text = message
                elif frame_text is not None:
                    text = frame_text(message)
                else:
                    text = message.decode("utf-8", errors="replace")
                if is_pong(text):
                    self._ignored.inc()
                    continue
                if reply_to is not None:
                    reply = reply_to(text)
                    if reply is not None:          # the venue's own ping: answer it, keep no stream alive
                        await session.ws.send(reply)
                        self._ignored.inc()
                        continue
                session.frames += 1
                clock.saw(channel_of(text) if channel_of else None, time.monotonic())
                frame = RawFrame(venue=venue_id, frame=text, ts_recv=now_ms())
                if session.hold is not None:
                    session.hold.append(frame)
                else:
                    await out.put(frame)
        finally:
            self._connections.dec()

    @staticmethod
    async def _beat(ws: ClientConnection, payload: str, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await ws.send(payload)

    async def _watch(self, session: _Session, rotate_at: float | None) -> str:
        """Wait until the session ends (``closed``), a stream is ``stale`` or it is time to ``rotate``."""
        reader = session.reader
        assert reader is not None
        while True:
            done, _ = await asyncio.wait({reader}, timeout=self.timing.check_interval)
            if done:
                return "closed"
            now = time.monotonic()
            stale = session.clock.stale(now)
            if stale is not None:
                log.warning("%s: %s stream silent for more than %.0f s: resetting the connection",
                            self.venue.id, stale, self.thresholds[stale])
                return "stale"
            if rotate_at is not None and now >= rotate_at:
                return "rotate"

    async def _release(self, session: _Session) -> None:
        """Hand over the frames a rotation's new connection held, then let it stream directly."""
        held = session.hold
        while held:
            await self.out.put(held.pop(0))
        session.hold = None

    async def _overlap(self, new: _Session) -> None:
        """Let the new connection deliver before the old one closes: what only the old one had in
        flight is read meanwhile, and the dedupe drops what both deliver."""
        deadline = time.monotonic() + 5 * self.timing.rotation_overlap
        while not new.frames and time.monotonic() < deadline and new.reader and not new.reader.done():
            await asyncio.sleep(min(0.05, self.timing.rotation_overlap))
        await asyncio.sleep(self.timing.rotation_overlap)

    async def run(self) -> None:
        lifetime = self.timing.rotate_after or self.venue.rules.rotate_after_seconds
        attempt = 0
        current: _Session | None = None
        try:
            while True:
                try:
                    session = await self._open(hold=current is not None)
                except (OSError, WebSocketException, TimeoutError) as exc:
                    delay = backoff_delay(attempt, self.timing.backoff_initial, self.timing.backoff_max, self.rng)
                    attempt += 1
                    log.warning("%s: connect to %s failed (%s); retry %d in %.2f s%s",
                                self.venue.id, self.url[:80], exc, attempt, delay,
                                " (rotation: the old connection keeps streaming)" if current else "")
                    await asyncio.sleep(delay)
                    continue
                if current is not None:
                    # Old frames first, then the new connection's (the dedupe drops the overlap):
                    # trade ids stay in order, so the overlap cannot look like a gap.
                    await self._overlap(session)
                    await current.close(drain=self.timing.rotation_overlap)
                    await self._release(session)
                    self.rotations += 1
                    log.info("%s: rotated connection (new one streaming, old one closed)", self.venue.id)
                current = session
                reason = await self._watch(session, time.monotonic() + lifetime if lifetime else None)
                if reason == "rotate":
                    continue
                if session.frames:
                    attempt = 0
                await session.close()
                current = None
                self.reconnects += 1
                metrics.RECONNECTS.labels(self.venue.id).inc()
                if reason == "stale":
                    self.stale_resets += 1
                    metrics.STALE_RESETS.labels(self.venue.id).inc()
                delay = backoff_delay(attempt, self.timing.backoff_initial, self.timing.backoff_max, self.rng)
                attempt += 1
                log.info("%s: connection %s; reconnecting in %.2f s", self.venue.id, reason, delay)
                await asyncio.sleep(delay)
        finally:
            if current is not None:
                await current.close()


def venue_url_override(override: str | None, venue_id: str) -> str | None:
    """The URL override of one venue: ``override`` is one websocket base URL for every venue, or
    ``venue=URL`` entries separated by commas (a venue not listed connects to its real URL)."""
    if not override or "://" in override.split("=", 1)[0]:
        return override or None
    urls = {}
    for entry in filter(None, (e.strip() for e in override.split(","))):
        name, sep, url = entry.partition("=")
        if not sep or not name.strip() or "://" not in url:
            raise SettingsError(f"{env_name('venue_url_override')}: {entry!r} is neither a URL nor venue=URL")
        urls[name.strip()] = url.strip()
    return urls.get(venue_id)


async def live_frames(venues: Sequence[tuple[Venue, Subscription]], timing: Timing, *,
                      url_override: str | None = None, queue_size: int = 10_000,
                      connections: list[Connection] | None = None) -> AsyncIterator[RawFrame]:
    """Frames of every planned connection of every venue, as one async iterator (never ends).

    The bounded queue is the backpressure point: when the pipeline waits on Kafka, readers wait
    on the queue and stop reading their sockets. ``connections`` (optional) receives the
    :class:`Connection` objects, for tests and status.
    """
    queue: asyncio.Queue[RawFrame] = asyncio.Queue(queue_size)
    made = [Connection(venue, planned, queue, timing, url_override=venue_url_override(url_override, venue.id))
            for venue, subscription in venues for planned in plan_connections(venue, subscription)]
    if connections is not None:
        connections.extend(made)
    async for frame in frames_of(made, queue):
        yield frame


async def frames_of(connections: Sequence[Connection], queue: asyncio.Queue[RawFrame]) -> AsyncIterator[RawFrame]:
    """Run ``connections`` (all feeding ``queue``) and yield their frames; cancels them on close."""
    tasks = [asyncio.create_task(c.run(), name=f"ws-{c.venue.id}") for c in connections]
    try:
        while True:
            yield await queue.get()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
