"""Channel registry with bounded history, and the per-connection send queue (pure, no I/O).

seq of a record = its Kafka offset, so every gateway instance (and a restarted one) gives the
same seq to the same record; ``prev`` = the seq of the channel's previous record, which lets a
client (and the resume logic) tell a contiguous replay from a gap. ``epoch`` names the stream the
seqs belong to (see :func:`protocol.stream_epoch`): when a partition's offsets go back, its stream
was reset, its channels are forgotten and what follows carries a new epoch.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterator

from services.gateway import protocol


class Entry:
    """One record of a channel. Its ``update`` envelope (shared by every subscriber) is encoded
    when first asked for: most records of a busy stream reach no subscriber and are never sent."""

    __slots__ = ("channel", "epoch", "prev", "seq", "ts", "value", "_update")

    def __init__(self, channel: str, seq: int, prev: int | None, value: bytes, ts: int, epoch: str = "") -> None:
        self.channel, self.seq, self.prev, self.value, self.ts, self.epoch = channel, seq, prev, value, ts, epoch
        self._update: bytes | None = None

    @property
    def update(self) -> bytes:
        if self._update is None:
            self._update = protocol.envelope("update", self.channel, self.seq, self.prev, self.value, self.ts,
                                             epoch=self.epoch)
        return self._update


class Channel:
    """Latest value and the last ``history_size`` records of one channel."""

    __slots__ = ("name", "family", "history", "epoch")

    def __init__(self, name: str, family: str, history_size: int, epoch: str = "") -> None:
        self.name = name
        self.family = family
        self.history: deque[Entry] = deque(maxlen=max(1, history_size))
        self.epoch = epoch

    @property
    def latest(self) -> Entry | None:
        return self.history[-1] if self.history else None

    def append(self, seq: int, value: bytes, ts: int, epoch: str = "") -> Entry | None:
        """Record a value; returns its entry, or None for a redelivered (old) seq. A value of another
        epoch starts the channel's history anew (what was retained belongs to a reset stream)."""
        if epoch != self.epoch:
            self.history.clear()
            self.epoch = epoch
        latest = self.latest
        if latest is not None and seq <= latest.seq:
            return None
        prev = latest.seq if latest else None
        entry = Entry(self.name, seq, prev, value, ts, epoch)
        self.history.append(entry)
        return entry

    def snapshot(self, recovered: bool | None = None) -> bytes | None:
        latest = self.latest
        if latest is None:
            return None
        return protocol.envelope("snapshot", self.name, latest.seq, latest.prev, latest.value, latest.ts,
                                 recovered, latest.epoch)

    def past_entries(self, count: int) -> list[Entry]:
        """Up to ``count`` retained entries before the latest, oldest first."""
        if count <= 0 or len(self.history) < 2:
            return []
        return list(self.history)[:-1][-count:]

    def past(self, count: int) -> list[bytes]:
        """Up to ``count`` retained values before the latest, oldest first, as ``history`` messages."""
        return [history_message(self.name, e) for e in self.past_entries(count)]

    def after(self, since: int | None, limit: int) -> tuple[list[Entry], bool]:
        """Up to ``limit`` retained entries with seq > ``since`` (all retained if None), oldest first,
        and whether the retained history still reaches back to ``since`` (nothing missed before them)."""
        entries = list(self.history)
        if since is None:
            return entries[-limit:] if limit > 0 else [], True
        newer = [e for e in entries if e.seq > since]
        complete = not newer or newer[0].prev is None or newer[0].prev <= since
        return newer[:limit], complete

    def replay_after(self, since: int) -> list[Entry] | None:
        """Every entry after seq ``since`` if history still holds all of them, else None (never partial)."""
        latest = self.latest
        if latest is None:
            return None
        if latest.seq == since:
            return []
        entries = list(self.history)
        for index, entry in enumerate(entries):
            if entry.prev == since:
                return entries[index:]
        return None


def history_message(name: str, entry: Entry) -> bytes:
    return protocol.envelope("history", name, entry.seq, entry.prev, entry.value, entry.ts, epoch=entry.epoch)


def history_message_size(entry: Entry) -> int:
    """The exact size of :func:`history_message` without building it: the update envelope with a
    one-character longer type name (so an answer is sized before anything is allocated for it)."""
    return len(entry.update) + len("history") - len("update")


class Registry:
    """Every channel seen so far, created on first record."""

    def __init__(self, history_size: int) -> None:
        self.history_size = history_size
        self.channels: dict[str, Channel] = {}

    def append(self, family: str, key: str, seq: int, value: bytes, ts: int,
               epoch: str = "") -> tuple[Channel, Entry | None]:
        name = f"{family}:{key}"
        channel = self.channels.get(name)
        if channel is None:
            channel = self.channels[name] = Channel(name, family, self.history_size, epoch)
        return channel, channel.append(seq, value, ts, epoch)

    def forget(self, family: str, epoch: str) -> int:
        """Drop the channels of a reset stream (their data is gone from Kafka); returns how many."""
        stale = [name for name, c in self.channels.items() if c.family == family and c.epoch == epoch]
        for name in stale:
            del self.channels[name]
        return len(stale)

    def matching(self, pattern: str) -> Iterator[Channel]:
        if not protocol.is_pattern(pattern):
            channel = self.channels.get(pattern)
            if channel is not None:
                yield channel
            return
        prefix = pattern[:-1]
        for name, channel in self.channels.items():
            if name.startswith(prefix):
                yield channel


class Epochs:
    """The stream epoch of every partition the gateway reads, and when a partition was reset."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, int], tuple[str, int]] = {}  # (topic, partition) -> (epoch, last offset)

    def observe(self, topic: str, partition: int, offset: int, timestamp: int) -> tuple[str, str | None]:
        """(epoch of this record, the epoch it replaced if the partition's offsets went back)."""
        seen = self._seen.get((topic, partition))
        if seen is not None and offset > seen[1]:
            self._seen[(topic, partition)] = (seen[0], offset)
            return seen[0], None
        epoch = protocol.stream_epoch(partition, offset, timestamp)
        self._seen[(topic, partition)] = (epoch, offset)
        return epoch, seen[0] if seen is not None else None


class QueueOverflow(Exception):
    """An event (never conflated) did not fit: the client is too slow and must be disconnected."""


class SendQueue:
    """Bounded per-connection queue: state channels conflate, events and control messages do not.

    A queued state message for a channel is replaced in place by a newer one (the client only
    needs the latest value), so state traffic never grows the queue beyond one item per channel;
    non-conflating items count against ``limit`` and overflow raises :class:`QueueOverflow`.
    """

    __slots__ = ("limit", "_items", "_counter", "_unconflated", "nbytes")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: OrderedDict[object, bytes | deque[bytes]] = OrderedDict()
        self._counter = 0
        self._unconflated = 0
        self.nbytes = 0  # bytes of every queued message: what the connection's byte budget bounds

    def __len__(self) -> int:
        return len(self._items)

    def put_state(self, channel: str, data: bytes) -> bool:
        """Queue the latest value of a state channel; True when it replaced (conflated) a queued one."""
        old = self._items.get(channel)
        self._items[channel] = data
        self.nbytes += len(data) - (len(old) if isinstance(old, bytes) else 0)
        return old is not None

    def put(self, data: bytes) -> None:
        """Queue an event or control message; raises QueueOverflow beyond ``limit``."""
        if self._unconflated >= self.limit:
            raise QueueOverflow(f"send queue full ({self.limit} messages)")
        self._counter += 1
        self._items[self._counter] = data
        self._unconflated += 1
        self.nbytes += len(data)

    def put_bulk(self, messages: list[bytes]) -> None:
        """Queue the answer to one request (history, an event replay) as ONE item against ``limit``:
        its size is bounded by the request (history size x channels), and a client asking for
        history is not a slow consumer for that."""
        if not messages:
            return
        if self._unconflated >= self.limit:
            raise QueueOverflow(f"send queue full ({self.limit} messages)")
        self._counter += 1
        self._items[self._counter] = deque(messages)
        self._unconflated += 1
        self.nbytes += sum(len(m) for m in messages)

    def pop(self) -> bytes:
        key = next(iter(self._items))
        item = self._items[key]
        if isinstance(item, deque):
            data = item.popleft()
            self.nbytes -= len(data)
            if item:
                return data
        else:
            data = item
            self.nbytes -= len(data)
        del self._items[key]
        if isinstance(key, int):
            self._unconflated -= 1
        return data
