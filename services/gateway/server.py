"""The gateway's asyncio shell: a Kafka reader feeding the registry, and the websocket server.

Each instance reads every partition of the derived topics itself (manual assignment, no
consumer group), rebuilds the latest value of every channel up to the end offsets seen at
start, and only then reports ready. The protocol, registry and queues are pure modules.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.http11 import Request as HttpRequest
from websockets.http11 import Response
from websockets.protocol import Event, State

from services.common import codec, topics
from services.common.kafka import make_consumer, make_producer
from services.common.settings import KafkaSettings
from services.gateway import metrics, protocol
from services.gateway.auth import Authenticator, AuthError
from services.gateway.httpapi import WS_PATH, HttpApi, request_token
from services.gateway.limits import LogThrottle, connection_caps
from services.gateway.protocol import Close, Err, ProtocolError
from services.gateway.session import Changes, Closing, Limits, Session, slow_consumer
from services.gateway.settings import GatewaySettings
from services.gateway.state import Epochs, Registry

log = logging.getLogger("cryptopulse.gateway")


RESET_CHECK_SECONDS = 1.0  # how often every partition's end is compared with our position (resets)
FETCH_MAX_WAIT_MS = 20  # an idle partition must not hold back another partition's update
DIRECT_WRITE_LIMIT = 64 * 1024  # bytes buffered in a socket beyond which updates go through the queue
CLOSE_TIMEOUT = 3.0  # seconds for the final frame and the close handshake before the socket is cut
ACCEPT_LOG_INTERVAL = 10.0  # seconds between two log lines about refused or failed connections


class GatewayConnection(ServerConnection):
    """websockets' server connection with two hooks the session rules need: every received frame
    (control frames included) is reported to ``frame_hook``, and a socket accepted beyond
    ``socket_cap`` is dropped at once, so the process keeps file descriptors for itself."""

    socket_cap = 0
    frame_hook: Callable[[Frame], None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self.socket_cap and len(self.server.handler_tasks) > self.socket_cap:
            metrics.CONNECTS.labels("rejected_limit").inc()
            throttled_log(f"socket cap of {self.socket_cap} reached: dropping new connections")
            self.transport.abort()

    def process_event(self, event: Event) -> None:
        super().process_event(event)
        if self.frame_hook is not None and isinstance(event, Frame):
            self.frame_hook(event)


def connection_class(socket_cap: int) -> type[GatewayConnection]:
    return type("CappedConnection", (GatewayConnection,), {"socket_cap": socket_cap})


class Client:
    """One websocket connection: its socket, its session (the rules), its sender task."""

    __slots__ = ("ws", "session", "queue", "sender", "closing", "close_task", "expiry", "expiry_at")

    def __init__(self, ws: ServerConnection, session: Session) -> None:
        self.ws = ws
        self.session = session
        self.queue = session.queue  # read on every delivery (write_now): one attribute hop less
        self.sender: asyncio.Task[None] | None = None
        self.closing = False
        self.close_task: asyncio.Task[None] | None = None
        self.expiry: asyncio.TimerHandle | None = None
        self.expiry_at: float | None = None

    def write_now(self, frame: bytes) -> bool:
        """Write a complete frame straight to the socket when nothing is queued before it and the
        socket is not backed up; False means the caller must queue the message instead."""
        ws = self.ws
        if (self.closing or len(self.queue) or ws.protocol.state is not State.OPEN
                or ws.send_in_progress is not None or ws.transport.is_closing()
                or ws.transport.get_write_buffer_size() > DIRECT_WRITE_LIMIT):
            return False
        ws.transport.write(frame)
        return True


class Gateway:
    def __init__(self, settings: GatewaySettings, kafka: KafkaSettings) -> None:
        self.settings = settings
        self.kafka = kafka
        self.registry = Registry(settings.gateway_history_size)
        self.epochs = Epochs()
        self._reset_check_at = 0.0
        self.clients: set[Client] = set()
        self.exact: dict[str, set[Client]] = {}
        self.patterns: dict[str, set[Client]] = {}
        self.ready = asyncio.Event()
        self.auth = Authenticator(settings)
        self.limits = Limits.from_settings(settings)
        self.caps = connection_caps(resource.getrlimit(resource.RLIMIT_NOFILE)[0], settings.gateway_max_connections)
        self.http = HttpApi(settings, self.registry, self.auth, self.ready.is_set)
        self.server: Server | None = None
        self.producer: AIOKafkaProducer | None = None

    # ---- Kafka side ----
    async def consume(self) -> None:
        consumer = make_consumer(self.kafka, group_id=None, fetch_max_wait_ms=FETCH_MAX_WAIT_MS)
        self.producer = make_producer(self.kafka, enable_idempotence=False)  # dead letters only: at-least-once is enough
        await self.producer.start()
        await consumer.start()
        try:
            partitions = await self._assign_all(consumer)
            ends = await consumer.end_offsets(partitions)
            log.info("rebuilding snapshots from %d partitions (%d records)", len(partitions),
                     sum(ends.values()))
            while not self.ready.is_set():
                if await self._caught_up(consumer, ends):
                    self.ready.set()
                    log.info("snapshots loaded: %d channels; ready", len(self.registry.channels))
                    break
                await self._poll(consumer)
            while True:
                await self._poll(consumer)
        finally:
            await consumer.stop()
            await self.producer.stop()

    async def _assign_all(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        await consumer.topics()
        partitions = [TopicPartition(topic.name, p)
                      for topic, _ in protocol.FAMILIES.values()
                      for p in sorted(consumer.partitions_for_topic(topic.name) or ())]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        return partitions

    @staticmethod
    async def _caught_up(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
        for tp, end in ends.items():
            if await consumer.position(tp) < end:
                return False
        return True

    async def _poll(self, consumer: AIOKafkaConsumer) -> None:
        batches = await consumer.getmany(timeout_ms=200, max_records=5000)
        for tp, records in batches.items():
            family = protocol.FAMILY_BY_TOPIC[tp.topic]
            for record in records:
                epoch, replaced = self.epochs.observe(tp.topic, tp.partition, record.offset, record.timestamp)
                if replaced is not None:
                    log.warning("%s[%d] was reset (offsets went back to %d): stream epoch %s replaces %s; "
                                "%d channels forgotten", tp.topic, tp.partition, record.offset, epoch, replaced,
                                self.registry.forget(family, replaced))
                reason = self.on_record(family, record.key, record.value, record.offset, record.timestamp, epoch)
                if reason is not None:
                    await self.dead_letter(family, tp, record.offset, record.value, reason)
            if records:
                metrics.RECORDS.labels(family).inc(len(records))
                newest = max(record.timestamp for record in records)
                metrics.SNAPSHOT_AGE.labels(family).set(max(0.0, (protocol.now_ms() - newest) / 1000))
            highwater = consumer.highwater(tp)
            if highwater is not None:
                lag = highwater - await consumer.position(tp)
                metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(lag)
        if time.monotonic() >= self._reset_check_at:
            self._reset_check_at = time.monotonic() + RESET_CHECK_SECONDS
            await self._rewind_reset_partitions(consumer)

    @staticmethod
    async def _rewind_reset_partitions(consumer: AIOKafkaConsumer) -> None:
        """A partition whose log now ends before our position was reset (an embedded broker restarted
        empty, a topic recreated): read it again from its start, where :class:`Epochs` sees the offsets
        go back. Kafka answers such a fetch with OFFSET_OUT_OF_RANGE (and aiokafka rewinds); Tansu
        answers with nothing, so the high watermark is what tells."""
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is not None and highwater < await consumer.position(tp):
                log.warning("%s[%d] ends at %d, before our position: reset; reading it from its start",
                            tp.topic, tp.partition, highwater)
                await consumer.seek_to_beginning(tp)

    async def dead_letter(self, family: str, tp: TopicPartition, offset: int, value: bytes | None,
                          reason: str) -> None:
        """A derived record we cannot serve goes to the dead-letter topic, counted; serving goes on."""
        metrics.DEADLETTERS.labels(family).inc()
        assert self.producer is not None, "consume() starts the producer before reading"
        log.warning("dead-lettering %s[%d]@%d: %s", tp.topic, tp.partition, offset, reason)
        letter = codec.dead_letter(f"gateway:{tp.topic}", value or b"", f"{reason} (partition {tp.partition}, "
                                                                         f"offset {offset})")
        await self.producer.send_and_wait(topics.DEADLETTER.name, codec.encode(letter),
                                          key=codec.encode_key(f"gateway:{tp.topic}"))

    def on_record(self, family: str, key: bytes | None, value: bytes | None, offset: int,
                  ts_kafka: int, epoch: str = "") -> str | None:
        """Store one derived record and fan it out (encoded once); returns why it is unusable, if it is."""
        if not key or value is None:
            return "record without key or value"
        try:
            if not isinstance(orjson.loads(value), dict):
                return "value is not a JSON object"
            name = key.decode()
        except orjson.JSONDecodeError:
            return "value is not JSON"
        except UnicodeDecodeError:
            return "key is not UTF-8"
        now = protocol.now_ms()
        channel, entry = self.registry.append(family, name, offset, value, now, epoch)
        if entry is None or not self.ready.is_set():
            return None
        started = time.perf_counter()
        subscribers = self.subscribers(channel.name)
        if subscribers:    # (the metrics cost more than a record nobody subscribed to: kept to fan-outs)
            self.fan_out(subscribers, channel.name, family, entry.update)
            metrics.DELIVERY_LATENCY.observe(max(0.0, (now - ts_kafka) / 1000))
            metrics.BROADCAST.observe(time.perf_counter() - started)
        return None

    def subscribers(self, channel: str) -> set[Client]:
        found = set(self.exact.get(channel, ()))
        for pattern, clients in self.patterns.items():
            if channel.startswith(pattern[:-1]):
                found |= clients
        return found

    def fan_out(self, clients: set[Client], channel: str, family: str, data: bytes) -> None:
        """Deliver one update: the frame is built once; a client that is keeping up gets it written
        straight to its socket (no task switch), a client that is behind gets it queued (state
        channels conflate there; events, or a queue over its byte budget, close a slow consumer)."""
        metrics.MESSAGES_SENT.labels(family).inc(len(clients))
        conflate = protocol.conflates(family)
        frame = protocol.text_frame(data)
        direct = 0
        for client in clients:
            if client.write_now(frame):
                direct += 1
            elif not client.closing:
                try:
                    if client.session.deliver(channel, conflate, data):
                        metrics.CONFLATED.labels(family).inc()
                except Closing as closing:
                    self.close_client(client, closing)
                    continue
                self.kick(client)
        metrics.BYTES_SENT.inc(direct * len(data))

    def kick(self, client: Client) -> None:
        """Make sure a sender task is draining the queue. It exists only while something is queued,
        so an idle connection costs no task (memory per connection is a benchmark target)."""
        if client.sender is None or client.sender.done():
            client.sender = asyncio.get_running_loop().create_task(self.send_queued(client))

    async def send_queued(self, client: Client) -> None:
        """Write every queued message, waiting for the socket to drain after each, for at most twice
        the heartbeat: while a client does not read, its queue (not the server) absorbs the updates
        until it conflates, overflows its budget or the wait times out (then it is closed)."""
        queue, ws = client.session.queue, client.ws
        try:
            while len(queue) and not client.closing:
                data = queue.pop()
                if ws.protocol.state is State.OPEN and ws.send_in_progress is None:
                    ws.protocol.send_text(data)  # the path of websockets.broadcast(): no per-frame await
                    ws.send_data()
                else:
                    await ws.send(data, text=True)
                metrics.BYTES_SENT.inc(len(data))
                if not ws.paused:  # the common case: nothing to wait for, no timer to arm
                    await ws.drain()
                    continue
                try:
                    async with asyncio.timeout(self.settings.gateway_heartbeat_seconds * 2):
                        await ws.drain()
                except TimeoutError:
                    self.close_client(client, slow_consumer("the socket did not drain within two heartbeats"))
                    return
        except ConnectionClosed:
            pass

    # ---- websocket side ----
    def process_request(self, connection: ServerConnection, request: HttpRequest) -> Response | None:
        """Plain HTTP (health, dashboard, the HTTP API) is answered here; None = go on with the upgrade."""
        return self.http.respond(request)

    async def handle(self, ws: ServerConnection) -> None:
        try:
            grant = self.auth.grant(request_token(ws.request))
        except AuthError as exc:
            metrics.AUTH_FAILURES.inc()
            metrics.CONNECTS.labels("rejected_auth").inc()
            await self.reject(ws, Close.AUTH_FAILED, Err.AUTH_FAILED, str(exc))
            return
        if len(self.clients) >= self.caps.websockets:
            metrics.LIMIT_VIOLATIONS.labels("connections").inc()
            metrics.CONNECTS.labels("rejected_limit").inc()
            await self.reject(ws, Close.LIMIT_EXCEEDED, Err.TOO_MANY_CONNECTIONS, "connection limit reached")
            return
        refresh = self.auth.grant if self.auth.enabled else None
        client = Client(ws, Session(self.limits, grant, time.time(), refresh))
        if isinstance(ws, GatewayConnection):
            ws.frame_hook = partial(self.on_frame, client)
        self.clients.add(client)
        self.schedule_expiry(client)
        metrics.CONNECTS.labels("accepted").inc()
        metrics.CONNECTIONS.inc()
        try:
            await self.read_loop(client)
        except ConnectionClosed:
            pass
        finally:
            self.drop(client)
            if client.expiry is not None:
                client.expiry.cancel()
            if client.sender is not None:
                client.sender.cancel()
            if client.close_task is not None:
                await asyncio.gather(client.close_task, return_exceptions=True)
            metrics.CONNECTIONS.dec()
            metrics.DISCONNECTS.labels(metrics.close_code_label(ws.close_code)).inc()

    async def reject(self, ws: ServerConnection, code: int, error: str, message: str) -> None:
        metrics.CLIENT_ERRORS.labels(error).inc()
        try:
            await ws.send(protocol.error(error, message), text=True)
            await ws.close(code, message[:100])
        except ConnectionClosed:
            pass

    def on_frame(self, client: Client, frame: Frame) -> None:
        """Every received frame, control frames included, takes a token of the rate bucket."""
        if client.closing:
            return
        if frame.opcode is Opcode.PONG:
            client.session.on_pong()
        try:
            client.session.admit(time.time())
        except Closing as closing:
            self.close_client(client, closing)

    async def read_loop(self, client: Client) -> None:
        async for frame in client.ws:
            if client.closing:
                return
            try:
                changes = client.session.receive(frame, self.registry, time.time())
            except ProtocolError as exc:
                self.error(client, exc)
                continue
            except Closing as closing:
                self.close_client(client, closing)
                return
            self.route(client, changes)
            if client.session.expires_at != client.expiry_at:
                self.schedule_expiry(client)
            self.kick(client)

    def error(self, client: Client, exc: ProtocolError) -> None:
        metrics.CLIENT_ERRORS.labels(exc.code).inc()
        if exc.code in (Err.FORBIDDEN, Err.AUTH_FAILED):
            metrics.AUTH_FAILURES.inc()
        elif exc.code == Err.TOO_MANY_SUBSCRIPTIONS:
            metrics.LIMIT_VIOLATIONS.labels("subscriptions").inc()
        try:
            client.session.send_control(protocol.error(exc.code, exc.message, exc.request_id))
        except Closing as closing:
            self.close_client(client, closing)
            return
        self.kick(client)

    def route(self, client: Client, changes: Changes) -> None:
        """Mirror a session's subscription changes in the routing index (channel/pattern -> clients)."""
        for channel in changes.added:
            index = self.patterns if protocol.is_pattern(channel) else self.exact
            index.setdefault(channel, set()).add(client)
            metrics.SUBSCRIPTIONS.labels(protocol.family_of(channel)).inc()
        for channel in changes.removed:
            self.unroute(client, channel)

    def unroute(self, client: Client, channel: str) -> None:
        index = self.patterns if protocol.is_pattern(channel) else self.exact
        members = index.get(channel)
        if members is not None:
            members.discard(client)
            if not members:
                del index[channel]
        metrics.SUBSCRIPTIONS.labels(protocol.family_of(channel)).dec()

    def drop(self, client: Client) -> None:
        for channel in client.session.subscriptions:
            self.unroute(client, channel)
        client.session.subscriptions.clear()
        self.clients.discard(client)

    def schedule_expiry(self, client: Client) -> None:
        """Close the connection when its token expires (re-armed by a ``refresh``)."""
        if client.expiry is not None:
            client.expiry.cancel()
            client.expiry = None
        client.expiry_at = at = client.session.expires_at
        if at is not None:
            client.expiry = asyncio.get_running_loop().call_later(max(0.0, at - time.time()), self.expire, client)

    def expire(self, client: Client) -> None:
        try:
            client.session.check_expiry(time.time())
        except Closing as closing:
            self.close_client(client, closing)
            return
        self.schedule_expiry(client)  # the timer fired a little early

    def close_client(self, client: Client, closing: Closing) -> None:
        """Stop queuing to a client, then send the final error frame (if any) and close with the code."""
        if client.closing:
            return
        client.closing = True
        self.drop(client)
        if closing.limit is not None:
            metrics.LIMIT_VIOLATIONS.labels(closing.limit).inc()
        if closing.slow:
            metrics.SLOW_DISCONNECTS.inc()
        final = None
        if closing.error is not None:
            metrics.CLIENT_ERRORS.labels(closing.error.code).inc()
            error = closing.error
            final = protocol.error(error.code, error.message, error.request_id)
        client.close_task = asyncio.get_running_loop().create_task(
            close_with(client.ws, closing.code, closing.reason, final))

    async def heartbeat(self) -> None:
        """Every heartbeat: each session's tick (expiry, liveness, the heartbeat message), then a ping."""
        while True:
            await asyncio.sleep(self.settings.gateway_heartbeat_seconds)
            now = time.time()
            depth = 0
            for client in list(self.clients):
                if client.closing:
                    continue
                depth += len(client.session.queue)
                try:
                    client.session.tick(now)
                except Closing as closing:
                    self.close_client(client, closing)
                    continue
                send_ping(client.ws)
                self.kick(client)
            metrics.QUEUE_DEPTH.set(depth)

    async def shutdown(self) -> None:
        """Close every client with the server-shutdown code, then the server."""
        for client in list(self.clients):
            client.closing = True
        closes = [close_with(c.ws, Close.SHUTDOWN, "server shutdown", None) for c in list(self.clients)]
        if closes:
            await asyncio.gather(*closes, return_exceptions=True)
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def run(self, stop: asyncio.Event) -> None:
        s = self.settings
        metrics.init_series(tuple(protocol.FAMILIES), protocol.CLOSE_CODES, protocol.ERROR_CODES)
        asyncio.get_running_loop().set_exception_handler(throttled_exception_handler)
        # Keepalive is the sessions' (heartbeat()): the library's waits on drain() without a timeout.
        self.server = await serve(
            self.handle, s.gateway_host, s.gateway_port, process_request=self.process_request,
            max_size=max(s.gateway_max_frame_bytes * 4, 65536), ping_interval=None, close_timeout=2,
            compression=None, create_connection=connection_class(self.caps.sockets), logger=HANDSHAKE_LOG,
        )
        log.info("listening on ws://%s:%d%s (at most %d websocket clients, %d sockets)", s.gateway_host,
                 s.gateway_port, WS_PATH, self.caps.websockets, self.caps.sockets)
        tasks = [asyncio.create_task(self.consume()), asyncio.create_task(self.heartbeat())]
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
        try:
            await self.shutdown()
        finally:
            for task in [*tasks, stopper]:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            if task is not stopper and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]


async def close_with(ws: ServerConnection, code: int, reason: str, final: bytes | None) -> None:
    """The final error frame, then the close handshake; a peer that does not take part is cut off."""
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT):
            if final is not None:
                await ws.send(final, text=True)
            await ws.close(code, reason)
    except (ConnectionClosed, TimeoutError):
        ws.transport.abort()


def send_ping(ws: ServerConnection) -> None:
    """A protocol ping written without waiting (the pong is seen by GatewayConnection.frame_hook)."""
    if ws.protocol.state is State.OPEN:
        ws.protocol.send_ping(os.urandom(4))
        ws.send_data()


THROTTLE = LogThrottle(ACCEPT_LOG_INTERVAL)


def throttled_log(message: str, level: int = logging.WARNING) -> None:
    """Log a line an attacker can provoke at will (accept errors, failed handshakes) at most once per interval."""
    suppressed = THROTTLE.allow(message, time.monotonic())
    if suppressed is not None:
        log.log(level, "%s%s", message, f" ({suppressed} more since the last report)" if suppressed else "")


def throttled_exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """asyncio reports each failed accept() (EMFILE at the open-file limit): once per interval is enough."""
    exc = context.get("exception")
    if isinstance(exc, OSError) and "accept" in str(context.get("message", "")):
        throttled_log(f"{context['message']}: {exc}", logging.ERROR)
        return
    loop.default_exception_handler(context)


class _ThrottledHandshakeLog(logging.Filter):
    """websockets logs every failed opening handshake with a traceback: keep one line per interval."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR:
            return True
        throttled_log(f"websocket: {record.getMessage()}", logging.WARNING)
        return False


HANDSHAKE_LOG = logging.getLogger("cryptopulse.gateway.websockets")
HANDSHAKE_LOG.setLevel(logging.WARNING)  # no line per connection opened or closed
HANDSHAKE_LOG.addFilter(_ThrottledHandshakeLog())
