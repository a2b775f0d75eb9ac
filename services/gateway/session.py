"""The rules of one websocket connection, without I/O: the clock is passed in, nothing is awaited.

A :class:`Session` owns the connection's send queue, subscriptions, rate bucket, byte budget,
token expiry and liveness. Its methods either change its state (queueing the messages to send),
raise :class:`~services.gateway.protocol.ProtocolError` (answer with an error frame, keep the
connection) or raise :class:`Closing` (send the final error frame if any, then close with the
code). The server mirrors the subscription changes in its routing index and does the writing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from services.gateway import protocol
from services.gateway.auth import AuthError, Grant
from services.gateway.protocol import Close, Err, ProtocolError, Request
from services.gateway.settings import GatewaySettings
from services.gateway.state import (
    Channel,
    Entry,
    QueueOverflow,
    Registry,
    SendQueue,
    history_message,
    history_message_size,
)


class Closing(Exception):
    """A rule says the connection must close: ``code``, after the ``error`` frame (if any) is sent.

    ``limit`` names the violated limit for metrics (None when the close is not a limit violation);
    ``slow`` marks a client that is not keeping up with what it was sent.
    """

    def __init__(self, code: int, reason: str, error: ProtocolError | None = None, limit: str | None = None,
                 slow: bool = False) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason[:100]
        self.error = error
        self.limit = limit
        self.slow = slow


@dataclass(frozen=True)
class Limits:
    max_subscriptions: int
    max_frame_bytes: int
    rate: float
    queue_size: int
    max_queued_bytes: int

    @classmethod
    def from_settings(cls, s: GatewaySettings) -> Limits:
        return cls(s.gateway_max_subscriptions, s.gateway_max_frame_bytes, s.gateway_rate_limit,
                   s.gateway_queue_size, s.gateway_max_queued_bytes)


@dataclass
class Changes:
    """Subscriptions a request added or removed: the server's routing index follows them."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Answer:
    """What one channel's part of a subscribe will send: history, then replayed updates (as one bulk
    item, or conflated to the latest), then a snapshot. Entries only: the history messages are built
    after the whole answer's ``size`` (bytes) has passed the budget."""

    channel: Channel
    history: list[Entry]
    bulk: list[bytes]
    state: bytes | None
    size: int


def slow_consumer(what: str) -> Closing:
    return Closing(Close.SLOW_CONSUMER, f"slow consumer: {what}", slow=True)


class Session:
    """Per-connection state and decisions; ``now`` is wall-clock seconds (token expiry is wall time)."""

    def __init__(self, limits: Limits, grant: Grant, now: float,
                 authenticate: Callable[[str, float], Grant] | None = None) -> None:
        self.limits = limits
        self.grant = grant
        self.queue = SendQueue(limits.queue_size)
        self.subscriptions: set[str] = set()
        self.tokens = limits.rate
        self.refilled = now
        self.ping_outstanding = False
        self.authenticate = authenticate

    # ---- frames in ----
    def admit(self, now: float) -> None:
        """Every frame the client sends (data or control) takes a token: ``rate`` per second, burst as many."""
        self.tokens = min(self.limits.rate, self.tokens + max(0.0, now - self.refilled) * self.limits.rate)
        self.refilled = now
        if self.tokens < 1:
            raise Closing(Close.LIMIT_EXCEEDED, "message rate limit exceeded", limit="rate",
                          error=ProtocolError(Err.RATE_LIMITED, "message rate limit exceeded"))
        self.tokens -= 1

    def on_pong(self) -> None:
        self.ping_outstanding = False

    def receive(self, frame: str | bytes, registry: Registry, now: float) -> Changes:
        """Serve one client message; the answer is queued."""
        if isinstance(frame, bytes):
            raise ProtocolError(Err.BINARY_FRAME, "binary frames are not accepted; send JSON text")
        if len(frame.encode()) > self.limits.max_frame_bytes:
            message = f"frame larger than {self.limits.max_frame_bytes} bytes"
            raise Closing(Close.LIMIT_EXCEEDED, message, ProtocolError(Err.FRAME_TOO_LARGE, message), "frame_size")
        request = protocol.parse_request(frame)
        if request.op == "ping":
            self.send_control(protocol.control("pong", id=request.id))
            return Changes()
        if request.op == "refresh":
            self.refresh(request, now)
            return Changes()
        if request.op == "subscribe":
            return self.subscribe(request, registry)
        return self.unsubscribe(request)

    # ---- requests ----
    def subscribe(self, request: Request, registry: Registry) -> Changes:
        """Validate everything (grants, subscription limit, byte budget) before changing anything."""
        for channel in request.channels:
            if not self.grant.allows(channel):
                raise ProtocolError(Err.FORBIDDEN, f"the token does not allow {channel!r}", request.id)
        new = [c for c in request.channels if c not in self.subscriptions]
        if len(self.subscriptions) + len(new) > self.limits.max_subscriptions:
            raise ProtocolError(Err.TOO_MANY_SUBSCRIPTIONS,
                                f"at most {self.limits.max_subscriptions} subscriptions per connection", request.id)
        answers = [self._plan(channel, request) for pattern in request.channels
                   for channel in registry.matching(pattern)]
        ack = protocol.ack(request.id, "subscribe", request.channels)
        size = len(ack) + sum(a.size for a in answers)
        if self.queue.nbytes + size > self.limits.max_queued_bytes:
            message = (f"the answer ({size} bytes) does not fit the connection's budget of "
                       f"{self.limits.max_queued_bytes} bytes ({self.queue.nbytes} queued): "
                       "ask less history or fewer channels")
            raise Closing(Close.LIMIT_EXCEEDED, "byte budget exceeded",
                          ProtocolError(Err.BUDGET_EXCEEDED, message, request.id), "bytes")
        self.subscriptions.update(new)
        self.send_control(ack)
        for answer in answers:
            self._queue_answer(answer)
        return Changes(added=new)

    def _plan(self, channel: Channel, request: Request) -> _Answer:
        """History (if asked), then a replay from ``since`` or a snapshot (recovered:false if resuming failed:
        history no longer reaching back, or ``since`` of another epoch)."""
        history = channel.past_entries(request.history)
        size = sum(history_message_size(e) for e in history)
        since = request.since.get(channel.name)
        epoch = request.epochs.get(channel.name, channel.epoch)
        if since is not None and epoch == channel.epoch:
            replay = channel.replay_after(since)
            if replay is not None:
                if protocol.conflates(channel.family):
                    state = replay[-1].update if replay else None
                    return _Answer(channel, history, [], state, size + (len(state) if state else 0))
                bulk = [e.update for e in replay]
                return _Answer(channel, history, bulk, None, size + sum(len(m) for m in bulk))
        snapshot = channel.snapshot(recovered=False if since is not None else None)
        return _Answer(channel, history, [], snapshot, size + (len(snapshot) if snapshot else 0))

    def _queue_answer(self, answer: _Answer) -> None:
        name = answer.channel.name
        try:
            self.queue.put_bulk([history_message(name, e) for e in answer.history])
            self.queue.put_bulk(answer.bulk)
        except QueueOverflow:
            raise slow_consumer("send queue overflow") from None
        if answer.state is not None:
            self.queue.put_state(name, answer.state)

    def unsubscribe(self, request: Request) -> Changes:
        removed = [c for c in request.channels if c in self.subscriptions]
        self.subscriptions.difference_update(removed)
        self.send_control(protocol.ack(request.id, "unsubscribe", request.channels))
        return Changes(removed=removed)

    def refresh(self, request: Request, now: float) -> None:
        """Replace the token: valid, and allowing every current subscription, or nothing changes."""
        if self.authenticate is None or request.token is None:
            raise ProtocolError(Err.BAD_REQUEST, "this gateway does not use tokens", request.id)
        try:
            grant = self.authenticate(request.token, now)
        except AuthError as exc:
            raise ProtocolError(Err.AUTH_FAILED, str(exc), request.id) from None
        denied = sorted(c for c in self.subscriptions if not grant.allows(c))
        if denied:
            raise ProtocolError(Err.FORBIDDEN, f"the new token does not allow {', '.join(denied)}", request.id)
        self.grant = grant
        self.send_control(protocol.control("ack", id=request.id, op="refresh", channels=[]))

    # ---- messages out ----
    def send_control(self, data: bytes) -> None:
        """Queue a control message (ack, error, pong, heartbeat): never dropped, so it counts."""
        self._fits(len(data))
        try:
            self.queue.put(data)
        except QueueOverflow:
            raise slow_consumer("send queue overflow") from None

    def deliver(self, channel: str, conflate: bool, data: bytes) -> bool:
        """Queue one update (``conflate``: of a state family); True when it replaced a queued one
        of the same channel."""
        if conflate:
            conflated = self.queue.put_state(channel, data)
            if self.queue.nbytes > self.limits.max_queued_bytes:
                raise slow_consumer("byte budget exceeded")
            return conflated
        self._fits(len(data))
        try:
            self.queue.put(data)
        except QueueOverflow:
            raise slow_consumer("send queue overflow") from None
        return False

    def _fits(self, size: int) -> None:
        if self.queue.nbytes + size > self.limits.max_queued_bytes:
            raise slow_consumer("byte budget exceeded")

    # ---- time ----
    @property
    def expires_at(self) -> float | None:
        return self.grant.expires_at

    def check_expiry(self, now: float) -> None:
        """Close with 4001 once the token has expired (a ``refresh`` before then extends the session)."""
        if self.grant.expires_at is not None and now >= self.grant.expires_at:
            raise Closing(Close.AUTH_FAILED, "token expired",
                          ProtocolError(Err.TOKEN_EXPIRED, "the token expired; reconnect with a new one"))

    def tick(self, now: float) -> None:
        """Once per heartbeat: expiry, then liveness (the previous ping must have been answered);
        queues the heartbeat message. The caller sends the protocol ping after it."""
        self.check_expiry(now)
        if self.ping_outstanding:
            raise slow_consumer("ping not answered within one heartbeat")
        self.ping_outstanding = True
        self.send_control(protocol.control("heartbeat"))
