"""The gateway's asyncio shell: a Kafka reader feeding the registry, and the websocket server.

Each instance reads every partition of the derived topics itself (manual assignment, no
consumer group), rebuilds the latest value of every channel up to the end offsets seen at
start, and only then reports ready. The protocol, registry and queues are pure modules.
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import time
from http import HTTPStatus
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request as HttpRequest
from websockets.http11 import Response
from websockets.protocol import State

from services.common import codec, topics
from services.common.kafka import make_consumer, make_producer
from services.common.settings import KafkaSettings
from services.gateway import metrics, protocol
from services.gateway.auth import Authenticator, AuthError, Grant
from services.gateway.protocol import Close, Err, ProtocolError
from services.gateway.settings import GatewaySettings
from services.gateway.state import QueueOverflow, Registry, SendQueue

log = logging.getLogger("cryptopulse.gateway")

STATIC_DIR = Path(__file__).resolve().parent / "static"
WS_PATH = "/ws"


FETCH_MAX_WAIT_MS = 20  # an idle partition must not hold back another partition's update
DIRECT_WRITE_LIMIT = 64 * 1024  # bytes buffered in a socket beyond which updates go through the queue


class Client:
    """One websocket connection: its subscriptions, send queue and sender task."""

    def __init__(self, ws: ServerConnection, queue_size: int, rate: float, grant: Grant) -> None:
        self.ws = ws
        self.queue = SendQueue(queue_size)
        self.sender: asyncio.Task[None] | None = None
        self.subscriptions: set[str] = set()
        self.grant = grant
        self.rate = rate
        self.tokens = rate
        self.refilled = time.monotonic()
        self.closing = False
        self.close_task: asyncio.Task[None] | None = None

    def allow_message(self) -> bool:
        """Token bucket: ``rate`` messages per second with a burst of as many."""
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.refilled) * self.rate)
        self.refilled = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

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

    def send_control(self, data: bytes) -> None:
        self.queue.put(data)
        self.kick()

    def kick(self) -> None:
        """Make sure a sender task is draining the queue. It exists only while something is queued,
        so an idle connection costs no task (memory per connection is a benchmark target)."""
        if self.sender is None or self.sender.done():
            self.sender = asyncio.get_running_loop().create_task(self.send_queued())

    async def send_queued(self) -> None:
        """Write every queued message, waiting for the socket to drain after each: while a client
        does not read, its queue (not the server) absorbs the updates until it conflates or overflows."""
        queue, ws = self.queue, self.ws
        try:
            while len(queue) and not self.closing:
                data = queue.pop()
                if ws.protocol.state is State.OPEN and ws.send_in_progress is None:
                    ws.protocol.send_text(data)  # the path of websockets.broadcast(): no per-frame await
                    ws.send_data()
                else:
                    await ws.send(data, text=True)
                metrics.BYTES_SENT.inc(len(data))
                await ws.drain()
        except ConnectionClosed:
            pass


class Gateway:
    def __init__(self, settings: GatewaySettings, kafka: KafkaSettings) -> None:
        self.settings = settings
        self.kafka = kafka
        self.registry = Registry(settings.gateway_history_size)
        self.clients: set[Client] = set()
        self.exact: dict[str, set[Client]] = {}
        self.patterns: dict[str, set[Client]] = {}
        self.ready = asyncio.Event()
        self.auth = Authenticator(settings)
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
                reason = self.on_record(family, record.key, record.value, record.offset, record.timestamp)
                if reason is not None:
                    await self.dead_letter(family, tp, record.offset, record.value, reason)
            if records:
                metrics.RECORDS.labels(family).inc(len(records))
            highwater = consumer.highwater(tp)
            if highwater is not None:
                lag = highwater - await consumer.position(tp)
                metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(lag)

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
                  ts_kafka: int) -> str | None:
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
        metrics.SNAPSHOT_AGE.labels(family).set(max(0.0, (now - ts_kafka) / 1000))
        channel, entry = self.registry.append(family, name, offset, value, now)
        if entry is None or not self.ready.is_set():
            return None
        started = time.perf_counter()
        subscribers = self.subscribers(channel.name)
        if subscribers:
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
        channels conflate there, events overflow to a slow-consumer close)."""
        conflate = protocol.conflates(family)
        metrics.MESSAGES_SENT.labels(family).inc(len(clients))
        frame = protocol.text_frame(data)
        direct = 0
        for client in clients:
            if client.write_now(frame):
                direct += 1
            else:
                self.enqueue(client, channel, family, data, conflate)
        metrics.BYTES_SENT.inc(direct * len(data))

    def enqueue(self, client: Client, channel: str, family: str, data: bytes, conflate: bool) -> None:
        if client.closing:
            return
        if conflate:
            if client.queue.put_state(channel, data):
                metrics.CONFLATED.labels(family).inc()
        else:
            try:
                client.queue.put(data)
            except QueueOverflow:
                metrics.SLOW_DISCONNECTS.inc()
                self.close_client(client, Close.SLOW_CONSUMER, "slow consumer: send queue overflow")
                return
        client.kick()

    # ---- websocket side ----
    def process_request(self, connection: ServerConnection, request: HttpRequest) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == "/healthz":
            return connection.respond(HTTPStatus.OK, "ok\n")
        if path == "/readyz":
            if self.ready.is_set():
                return connection.respond(HTTPStatus.OK, "ready\n")
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "loading snapshots\n")
        if path == "/" or path.startswith("/static/"):
            return static_response(path)
        if path == WS_PATH and not self.ready.is_set():
            # A subscription now would be answered from half-loaded snapshots: come back when ready.
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "loading snapshots\n")
        if path != WS_PATH:
            return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
        origins = self.settings.gateway_allowed_origins
        if origins and request.headers.get("Origin") not in origins:
            metrics.CONNECTS.labels("rejected_origin").inc()
            return connection.respond(HTTPStatus.FORBIDDEN, "origin not allowed\n")
        return None

    async def handle(self, ws: ServerConnection) -> None:
        try:
            grant = self.auth.grant(request_token(ws))
        except AuthError as exc:
            metrics.AUTH_FAILURES.inc()
            metrics.CONNECTS.labels("rejected_auth").inc()
            await self.reject(ws, Close.AUTH_FAILED, Err.AUTH_FAILED, str(exc))
            return
        if len(self.clients) >= self.settings.gateway_max_connections:
            metrics.LIMIT_VIOLATIONS.labels("connections").inc()
            metrics.CONNECTS.labels("rejected_limit").inc()
            await self.reject(ws, Close.LIMIT_EXCEEDED, Err.TOO_MANY_CONNECTIONS,
                              "connection limit reached")
            return
        client = Client(ws, self.settings.gateway_queue_size, self.settings.gateway_rate_limit, grant)
        self.clients.add(client)
        metrics.CONNECTS.labels("accepted").inc()
        metrics.CONNECTIONS.inc()
        try:
            await self.read_loop(client)
        except ConnectionClosed:
            pass
        finally:
            self.drop(client)
            if client.sender is not None:
                client.sender.cancel()
            if client.close_task is not None:
                await asyncio.gather(client.close_task, return_exceptions=True)
            metrics.CONNECTIONS.dec()
            code = ws.close_code if ws.close_code is not None else 1006
            metrics.DISCONNECTS.labels(str(code)).inc()

    async def reject(self, ws: ServerConnection, code: int, error: str, message: str) -> None:
        metrics.CLIENT_ERRORS.labels(error).inc()
        try:
            await ws.send(protocol.error(error, message), text=True)
            await ws.close(code, message[:100])
        except ConnectionClosed:
            pass

    async def read_loop(self, client: Client) -> None:
        async for frame in client.ws:
            if client.closing:
                return
            if not client.allow_message():
                self.violation(client, "rate", ProtocolError(Err.RATE_LIMITED, "message rate limit exceeded"))
                return
            if isinstance(frame, bytes):
                self.error(client, ProtocolError(Err.BINARY_FRAME, "binary frames are not accepted; send JSON text"))
                continue
            if len(frame.encode()) > self.settings.gateway_max_frame_bytes:
                self.violation(client, "frame_size", ProtocolError(
                    Err.FRAME_TOO_LARGE, f"frame larger than {self.settings.gateway_max_frame_bytes} bytes"))
                return
            try:
                self.serve_request(client, protocol.parse_request(frame))
            except ProtocolError as exc:
                self.error(client, exc)
            except QueueOverflow:
                metrics.SLOW_DISCONNECTS.inc()
                self.close_client(client, Close.SLOW_CONSUMER, "slow consumer: send queue overflow")
                return

    def error(self, client: Client, exc: ProtocolError, channel: str | None = None) -> None:
        metrics.CLIENT_ERRORS.labels(exc.code).inc()
        try:
            client.send_control(protocol.error(exc.code, exc.message, exc.request_id, channel))
        except QueueOverflow:
            self.close_client(client, Close.SLOW_CONSUMER, "slow consumer: send queue overflow")

    def serve_request(self, client: Client, request: protocol.Request) -> None:
        if request.op == "ping":
            client.send_control(protocol.control("pong", id=request.id))
        elif request.op == "subscribe":
            self.subscribe(client, request)
        else:
            self.unsubscribe(client, request)

    def subscribe(self, client: Client, request: protocol.Request) -> None:
        for channel in request.channels:
            if not client.grant.allows(channel):
                metrics.AUTH_FAILURES.inc()
                raise ProtocolError(Err.FORBIDDEN, f"the token does not allow {channel!r}", request.id)
        new = [c for c in request.channels if c not in client.subscriptions]
        if len(client.subscriptions) + len(new) > self.settings.gateway_max_subscriptions:
            metrics.LIMIT_VIOLATIONS.labels("subscriptions").inc()
            raise ProtocolError(Err.TOO_MANY_SUBSCRIPTIONS,
                                f"at most {self.settings.gateway_max_subscriptions} subscriptions per connection",
                                request.id)
        for channel in new:
            client.subscriptions.add(channel)
            index = self.patterns if protocol.is_pattern(channel) else self.exact
            index.setdefault(channel, set()).add(client)
            metrics.SUBSCRIPTIONS.labels(protocol.family_of(channel)).inc()
        client.send_control(protocol.ack(request.id, "subscribe", request.channels))
        for pattern in request.channels:
            for known in self.registry.matching(pattern):
                self.send_initial(client, known.name, request)

    def send_initial(self, client: Client, name: str, request: protocol.Request) -> None:
        """History (if asked), then a replay from ``since`` or a snapshot (recovered:false if resuming failed)."""
        channel = self.registry.channels[name]
        conflate = protocol.conflates(channel.family)
        client.queue.put_bulk(channel.past(request.history))
        client.kick()
        since = request.since.get(name)
        if since is not None:
            replay = channel.replay_after(since)
            if replay is not None:
                if conflate:
                    for entry in replay:
                        self.enqueue(client, name, channel.family, entry.update, conflate)
                else:
                    client.queue.put_bulk([entry.update for entry in replay])
                    client.kick()
                return
        snapshot = channel.snapshot(recovered=False if since is not None else None)
        if snapshot is not None:
            self.enqueue(client, name, channel.family, snapshot, conflate)

    def unsubscribe(self, client: Client, request: protocol.Request) -> None:
        for channel in request.channels:
            if channel in client.subscriptions:
                self.remove_subscription(client, channel)
        client.send_control(protocol.ack(request.id, "unsubscribe", request.channels))

    def remove_subscription(self, client: Client, channel: str) -> None:
        client.subscriptions.discard(channel)
        index = self.patterns if protocol.is_pattern(channel) else self.exact
        members = index.get(channel)
        if members is not None:
            members.discard(client)
            if not members:
                del index[channel]
        metrics.SUBSCRIPTIONS.labels(protocol.family_of(channel)).dec()

    def drop(self, client: Client) -> None:
        for channel in list(client.subscriptions):
            self.remove_subscription(client, channel)
        self.clients.discard(client)

    def close_client(self, client: Client, code: int, reason: str, final: bytes | None = None) -> None:
        """Stop queuing to a client, then send ``final`` (an error frame) and close it with ``code``."""
        if client.closing:
            return
        client.closing = True
        self.drop(client)
        client.close_task = asyncio.get_running_loop().create_task(close_with(client.ws, code, reason, final))

    def violation(self, client: Client, limit: str, exc: ProtocolError) -> None:
        """A limit violation that closes: the error frame goes out right before the close frame."""
        metrics.LIMIT_VIOLATIONS.labels(limit).inc()
        metrics.CLIENT_ERRORS.labels(exc.code).inc()
        final = protocol.error(exc.code, exc.message, exc.request_id)
        self.close_client(client, Close.LIMIT_EXCEEDED, exc.message[:100], final)

    async def heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.settings.gateway_heartbeat_seconds)
            beat = protocol.control("heartbeat")
            depth = 0
            for client in list(self.clients):
                depth += len(client.queue)
                try:
                    client.send_control(beat)
                except QueueOverflow:
                    metrics.SLOW_DISCONNECTS.inc()
                    self.close_client(client, Close.SLOW_CONSUMER, "slow consumer: send queue overflow")
            metrics.QUEUE_DEPTH.set(depth)

    async def shutdown(self) -> None:
        """Close every client with the server-shutdown code, then the server."""
        for client in list(self.clients):
            client.closing = True
        closes = [c.ws.close(Close.SHUTDOWN, "server shutdown") for c in list(self.clients)]
        if closes:
            await asyncio.wait_for(asyncio.gather(*closes, return_exceptions=True), timeout=3)
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def run(self, stop: asyncio.Event) -> None:
        s = self.settings
        metrics.init_series(tuple(protocol.FAMILIES), protocol.CLOSE_CODES, protocol.ERROR_CODES)
        self.server = await serve(
            self.handle, s.gateway_host, s.gateway_port, process_request=self.process_request,
            max_size=max(s.gateway_max_frame_bytes * 4, 65536), ping_interval=s.gateway_heartbeat_seconds,
            ping_timeout=s.gateway_heartbeat_seconds * 2, close_timeout=2, compression=None,
        )
        log.info("listening on ws://%s:%d%s", s.gateway_host, s.gateway_port, WS_PATH)
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
    try:
        if final is not None:
            await asyncio.wait_for(ws.send(final, text=True), 1)
        await ws.close(code, reason)
    except (ConnectionClosed, TimeoutError):
        ws.transport.abort()


def request_token(ws: ServerConnection) -> str | None:
    request = ws.request
    if request is None:
        return None
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[7:].strip()
    _, _, query = request.path.partition("?")
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if name == "token" and value:
            return value
    return None


def static_response(path: str) -> Response:
    """``/`` -> static/index.html, ``/static/<file>`` -> that file; nothing outside static/."""
    name = "index.html" if path == "/" else path[len("/static/"):]
    target = (STATIC_DIR / name).resolve()
    if STATIC_DIR.resolve() not in target.parents or not target.is_file():
        return http_response(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8")
    content_type = {".html": "text/html", ".js": "text/javascript", ".css": "text/css",
                    ".svg": "image/svg+xml"}.get(target.suffix) or mimetypes.guess_type(target.name)[0]
    if content_type is None:
        content_type = "application/octet-stream"
    if content_type.startswith("text/"):
        content_type += "; charset=utf-8"
    return http_response(HTTPStatus.OK, target.read_bytes(), content_type)


def http_response(status: HTTPStatus, body: bytes, content_type: str) -> Response:
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body))),
                       ("Connection", "close")])
    return Response(status.value, status.phrase, headers, body)
