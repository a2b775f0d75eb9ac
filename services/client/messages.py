"""Typed gateway messages and the per-channel resume position (pure: no I/O).

:func:`parse` turns one server frame into a :class:`Snapshot`, :class:`Update`, :class:`History`,
:class:`Ack`, :class:`Error` or :class:`Pong` (heartbeats and unknown types give None).
:class:`Positions` remembers the last ``(epoch, seq)`` per channel: it drops what was already
seen (a resume never repeats a message), flags a reset stream (another epoch) and a gap
(``prev`` is not the last seq seen), and builds the ``since`` of the next subscribe.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class Record:
    """A data message: the value (``data``) of ``channel`` at ``seq`` in stream ``epoch``."""

    channel: str
    seq: int
    prev: int | None
    epoch: str
    ts: int
    data: dict[str, Any]
    reset: bool = False  # the channel's stream was reset (another epoch than the last message's)
    gap: bool = False  # ``prev`` is not the last seq seen: messages were skipped (state channels conflate)

    @property
    def family(self) -> str:
        return self.channel.split(":", 1)[0]

    @property
    def key(self) -> str:
        return self.channel.split(":", 1)[1]


@dataclass(frozen=True, slots=True)
class Snapshot(Record):
    """The latest value when subscribing; ``recovered`` is False when a resume could not replay."""

    recovered: bool = True


@dataclass(frozen=True, slots=True)
class Update(Record):
    """A new value, in order."""


@dataclass(frozen=True, slots=True)
class History(Record):
    """A retained past value (asked with ``history=N``), oldest first, before the snapshot."""


@dataclass(frozen=True, slots=True)
class Ack:
    id: Any
    op: str
    channels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Error:
    """The gateway refused a request (``code`` as in docs/protocol.md)."""

    id: Any
    code: str
    message: str
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class Pong:
    id: Any


Message = Record | Ack | Error | Pong  # Record: a Snapshot, Update or History
_RECORDS: dict[str, type[Record]] = {"snapshot": Snapshot, "update": Update, "history": History}


class ProtocolViolation(ValueError):
    """A frame that is not a gateway message (the client drops the connection and reconnects)."""


def parse(frame: str | bytes) -> Message | None:
    """One server frame as a typed message; None for heartbeats and types this client does not know."""
    try:
        raw = orjson.loads(frame)
        kind = raw["type"]
        if kind in _RECORDS:
            fields = dict(channel=raw["channel"], seq=int(raw["seq"]), prev=raw.get("prev"),
                          epoch=str(raw.get("epoch", "")), ts=int(raw["ts"]), data=raw["data"])
            if kind == "snapshot":
                return Snapshot(**fields, recovered=raw.get("recovered", True) is not False)
            return _RECORDS[kind](**fields)
        if kind == "ack":
            return Ack(raw.get("id"), raw["op"], tuple(raw.get("channels", ())))
        if kind == "error":
            return Error(raw.get("id"), raw["code"], raw["message"], raw.get("channel"))
        if kind == "pong":
            return Pong(raw.get("id"))
        return None
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ProtocolViolation(f"not a gateway message: {exc}") from None


@dataclass
class Positions:
    """Last (epoch, seq) seen per channel, bounded by ``limit`` channels (oldest forgotten first)."""

    limit: int = 10_000
    seen: dict[str, tuple[str, int]] = field(default_factory=dict)

    def accept(self, record: Record) -> Record | None:
        """The record marked with reset/gap, or None when it was already seen (same epoch, seq not newer)."""
        last = self.seen.get(record.channel)
        reset = last is not None and last[0] != record.epoch
        if last is not None and not reset and record.seq <= last[1]:
            return None
        gap = last is not None and not reset and record.prev is not None and record.prev != last[1] \
            and not isinstance(record, History)
        self.seen.pop(record.channel, None)
        self.seen[record.channel] = (record.epoch, record.seq)
        if len(self.seen) > self.limit:
            del self.seen[next(iter(self.seen))]
        if reset or gap:
            return dataclasses.replace(record, reset=reset, gap=gap)
        return record

    def since(self, max_bytes: int, prefer: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
        """``since`` for a resubscribe that fits ``max_bytes`` once encoded: channels of the ``prefer``
        families first (events, whose every message matters), then the most recent others. Channels
        left out get a fresh snapshot, which is never wrong."""
        ordered = sorted(reversed(list(self.seen.items())), key=lambda item: item[0].split(":", 1)[0] not in prefer)
        chosen: dict[str, dict[str, Any]] = {}
        used = 2
        for channel, (epoch, seq) in ordered:
            entry = {"seq": seq, "epoch": epoch}
            cost = len(orjson.dumps({channel: entry})) - 1
            if used + cost > max_bytes:
                continue
            chosen[channel] = entry
            used += cost
        return chosen
