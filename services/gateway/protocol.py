"""The gateway's websocket protocol, without I/O: client requests, server envelopes, codes.

Channel name = ``<family>:<Kafka record key>``; a trailing ``*`` matches any suffix. The family
table is derived from the topic registry, so a new derived topic needs one line here.
Server messages are built as bytes: a record's value is spliced into the envelope untouched,
so an update is encoded once and the same bytes go to every subscriber.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from services.common import topics
from services.common.clock import now_ms as now_ms  # the one clock; the server reads it as protocol.now_ms

# family -> (topic, conflates). State families keep the latest value per channel; event
# families (alerts) must deliver every message, so they never conflate.
FAMILIES: dict[str, tuple[topics.Topic, bool]] = {
    "asset": (topics.ASSET_STATS, True),
    "sector": (topics.SECTOR_CAPS, True),
    "liquidations": (topics.LIQUIDATION_TOTALS, True),
    "candles": (topics.CANDLES, True),
    "indicators": (topics.INDICATORS, True),
    "alerts": (topics.ALERTS, False),
    "reference": (topics.REFERENCE_STATUS, True),
    # the backfilled candles the indicators were seeded with (charts show the whole history held)
    "backfill": (topics.CANDLE_HISTORY, True),
}
FAMILY_BY_TOPIC: dict[str, str] = {topic.name: family for family, (topic, _) in FAMILIES.items()}

WILDCARD = "*"


class Close:
    """Close codes (4000-4999 are the application's; RFC 6455 codes are left to the library)."""

    NORMAL = 4000
    AUTH_FAILED = 4001
    LIMIT_EXCEEDED = 4002
    SLOW_CONSUMER = 4003
    SHUTDOWN = 4004


class Err:
    """Error codes carried in ``{"type":"error","code":...}`` frames."""

    BAD_JSON = "bad_json"
    BINARY_FRAME = "binary_frame"
    BAD_REQUEST = "bad_request"
    UNKNOWN_OP = "unknown_op"
    UNKNOWN_CHANNEL = "unknown_channel"
    FORBIDDEN = "forbidden"
    TOO_MANY_SUBSCRIPTIONS = "too_many_subscriptions"
    FRAME_TOO_LARGE = "frame_too_large"
    RATE_LIMITED = "rate_limited"
    AUTH_FAILED = "auth_failed"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    BUDGET_EXCEEDED = "budget_exceeded"
    TOKEN_EXPIRED = "token_expired"


CLOSE_CODES: tuple[int, ...] = tuple(v for k, v in vars(Close).items() if k.isupper())
ERROR_CODES: tuple[str, ...] = tuple(v for k, v in vars(Err).items() if k.isupper())


class ProtocolError(Exception):
    """A client message that cannot be served; ``code`` is one of :class:`Err`."""

    def __init__(self, code: str, message: str, request_id: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


@dataclass(frozen=True)
class Request:
    op: str
    id: Any = None
    channels: tuple[str, ...] = ()
    since: dict[str, int] = field(default_factory=dict)
    history: int = 0
    token: str | None = None
    epochs: dict[str, str] = field(default_factory=dict)  # the stream epoch each ``since`` seq belongs to


OPS = ("subscribe", "unsubscribe", "ping", "refresh")


def family_of(channel: str) -> str:
    """The family of a channel or pattern; raises unknown_channel if it is not one we serve."""
    family, sep, rest = channel.partition(":")
    if channel == WILDCARD:
        raise ProtocolError(Err.UNKNOWN_CHANNEL, "a bare '*' is not a channel; use '<family>:*'")
    if family.endswith(WILDCARD) and not sep:
        family = family[:-1]
    if family not in FAMILIES:
        raise ProtocolError(Err.UNKNOWN_CHANNEL, f"unknown channel family {family!r} in {channel!r}; "
                                                 f"known: {', '.join(FAMILIES)}")
    if sep and not rest:
        raise ProtocolError(Err.UNKNOWN_CHANNEL, f"channel {channel!r} has an empty key")
    if WILDCARD in channel[:-1]:
        raise ProtocolError(Err.UNKNOWN_CHANNEL, f"'*' is only allowed at the end of {channel!r}")
    if not sep and not channel.endswith(WILDCARD):
        raise ProtocolError(Err.UNKNOWN_CHANNEL, f"channel {channel!r} needs a key: '{family}:<key>'")
    return family


def is_pattern(channel: str) -> bool:
    return channel.endswith(WILDCARD)


def matches(pattern: str, channel: str) -> bool:
    if is_pattern(pattern):
        return channel.startswith(pattern[:-1])
    return pattern == channel


def conflates(family: str) -> bool:
    return FAMILIES[family][1]


def _check_id(raw_id: Any) -> Any:
    if raw_id is None or isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool):
        return raw_id
    raise ProtocolError(Err.BAD_REQUEST, "'id' must be a string or an integer")


def parse_request(text: str | bytes) -> Request:
    """Validate one client text frame; raises :class:`ProtocolError` with the code to send."""
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(Err.BAD_JSON, f"not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError(Err.BAD_REQUEST, "a request is a JSON object")
    request_id = _check_id(message.get("id"))
    op = message.get("op")
    if op not in OPS:
        raise ProtocolError(Err.UNKNOWN_OP, f"unknown op {op!r}; known: {', '.join(OPS)}", request_id)
    if op == "ping":
        return Request(op="ping", id=request_id)
    if op == "refresh":
        token = message.get("token")
        if not isinstance(token, str) or not token:
            raise ProtocolError(Err.BAD_REQUEST, "'token' must be a non-empty string", request_id)
        return Request(op="refresh", id=request_id, token=token)
    return _parse_channels_request(op, message, request_id)


def _parse_channels_request(op: str, message: dict[str, Any], request_id: Any) -> Request:
    channels = message.get("channels")
    if not isinstance(channels, list) or not channels or not all(isinstance(c, str) for c in channels):
        raise ProtocolError(Err.BAD_REQUEST, "'channels' must be a non-empty list of strings", request_id)
    try:
        for channel in channels:
            family_of(channel)
    except ProtocolError as exc:
        exc.request_id = request_id
        raise
    since, epochs = _parse_since(message.get("since") or {}, request_id)
    history = message.get("history", 0)
    if not isinstance(history, int) or isinstance(history, bool) or history < 0:
        raise ProtocolError(Err.BAD_REQUEST, "'history' must be a non-negative integer", request_id)
    return Request(op=op, id=request_id, channels=tuple(dict.fromkeys(channels)), since=since, history=history,
                   epochs=epochs)


MAX_EPOCH_CHARS = 64


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_since(raw: Any, request_id: Any) -> tuple[dict[str, int], dict[str, str]]:
    """``since`` maps a channel to its last seq, or to ``{"seq": N, "epoch": "..."}`` so that a seq of a
    stream that has since been reset (new epoch) is answered with a fresh snapshot, not a replay."""
    wrong = ProtocolError(Err.BAD_REQUEST, "'since' maps channel names to an integer seq or to "
                                           "{\"seq\": <int>, \"epoch\": <string>}", request_id)
    if not isinstance(raw, dict):
        raise wrong
    seqs: dict[str, int] = {}
    epochs: dict[str, str] = {}
    for channel, value in raw.items():
        if isinstance(value, dict):
            epoch = value.get("epoch")
            if set(value) != {"seq", "epoch"} or not isinstance(epoch, str) or len(epoch) > MAX_EPOCH_CHARS:
                raise wrong
            epochs[channel] = epoch
            value = value["seq"]
        if not _is_int(value):
            raise wrong
        seqs[channel] = value
    return seqs, epochs


def control(kind: str, **fields: Any) -> bytes:
    """A small server message (ack, error, pong, heartbeat): encoded per client, it is tiny."""
    return orjson.dumps({"type": kind, **fields, "ts": now_ms()})


def ack(request_id: Any, op: str, channels: tuple[str, ...] = ()) -> bytes:
    return control("ack", id=request_id, op=op, channels=list(channels))


def error(code: str, message: str, request_id: Any = None, channel: str | None = None) -> bytes:
    extra: dict[str, Any] = {"channel": channel} if channel is not None else {}
    return control("error", id=request_id, code=code, message=message, **extra)


def envelope(kind: str, channel: str, seq: int, prev: int | None, value: bytes, ts: int,
             recovered: bool | None = None, epoch: str = "") -> bytes:
    """``{"type":kind,"channel":..,"seq":..,"prev":..,"epoch":..,"ts":..,"data":<value bytes>}`` without
    re-encoding the value."""
    head = b'{"type":"' + kind.encode() + b'","channel":' + orjson.dumps(channel) + b',"seq":' + str(seq).encode()
    head += b',"prev":' + (b"null" if prev is None else str(prev).encode()) + b',"epoch":' + orjson.dumps(epoch)
    head += b',"ts":' + str(ts).encode()
    if recovered is not None:
        head += b',"recovered":' + (b"true" if recovered else b"false")
    return head + b',"data":' + value + b"}"


def stream_epoch(partition: int, first_offset: int, first_timestamp: int) -> str:
    """The epoch of a partition's stream: names the first record the gateway read from it (the log
    start). Every gateway instance computes the same one from the same log; a log that was reset (an
    embedded broker restarted, a topic recreated) starts with another record and so another epoch."""
    return f"{partition}-{first_offset}-{first_timestamp}"


def text_frame(payload: bytes) -> bytes:
    """The complete RFC 6455 frame (FIN, text, unmasked as a server sends it) carrying ``payload``.

    Built once per update and written as is to every healthy subscriber's transport, so the
    per-delivery cost is one ``transport.write``. Valid only without a negotiated extension
    (the gateway serves with ``compression=None``).
    """
    size = len(payload)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 65536:
        header = bytes((0x81, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + size.to_bytes(8, "big")
    return header + payload
