"""Packs of trade-bars records: many Kafka records carried in one message of an internal topic.

Faust spends about 80 µs of CPU on every message it delivers to an agent, a plain aiokafka
consumer about 2 µs (``python -m bench.kafka_floor``); a one-trade bar costs the stages far less
than that. The bar packer (``packer.py``) therefore reads ``trade-bars`` with a plain consumer and
republishes its records, unchanged and in order, packed per partition into the internal topic the
asset stage's agent reads (same partition number, so the packs stay co-partitioned with the
``asset-buckets`` table). Pure: no Kafka here.

Layout (big-endian): ``b"CPK1"``, one flags byte (bit 0: the packer had read its source partition
to its end with this pack), a u32 record count, then per record a key and a value, each an i32
length (-1 for None) followed by that many bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence

MAGIC = b"CPK1"
CAUGHT_UP = 1
PACK_RECORDS = 250            # records per pack at most (one slice of the asset stage)
PACK_BYTES = 512 * 1024       # bytes of record values per pack at most

_HEAD = struct.Struct(">4sBI")
_LEN = struct.Struct(">i")

Record = tuple[bytes | None, bytes | None]     # (key, value) as read from the source topic


class PackError(ValueError):
    """A message of the pack topic that is not a well-formed pack."""


def pack(records: Sequence[Record], caught_up: bool) -> bytes:
    parts = [_HEAD.pack(MAGIC, CAUGHT_UP if caught_up else 0, len(records))]
    for key, value in records:
        for field in (key, value):
            if field is None:
                parts.append(_LEN.pack(-1))
            else:
                parts.append(_LEN.pack(len(field)))
                parts.append(field)
    return b"".join(parts)


def unpack(raw: bytes | None) -> tuple[list[Record], bool]:
    """The records of a pack and its caught-up flag; :class:`PackError` says what is wrong."""
    if raw is None or len(raw) < _HEAD.size:
        raise PackError("shorter than a pack header")
    magic, flags, count = _HEAD.unpack_from(raw)
    if magic != MAGIC:
        raise PackError(f"unknown pack format {magic!r}")
    view, at, end = memoryview(raw), _HEAD.size, len(raw)
    records: list[Record] = []
    for _ in range(count):
        fields: list[bytes | None] = []
        for _field in range(2):
            if at + 4 > end:
                raise PackError(f"truncated after {len(records)} of {count} records")
            (size,) = _LEN.unpack_from(raw, at)
            at += 4
            if size == -1:
                fields.append(None)
                continue
            if size < 0 or at + size > end:
                raise PackError(f"record {len(records)}: length {size} beyond the pack")
            fields.append(view[at:at + size].tobytes())
            at += size
        records.append((fields[0], fields[1]))
    if at != end:
        raise PackError(f"{end - at} bytes after the last of {count} records")
    return records, bool(flags & CAUGHT_UP)


def chunks(records: Sequence[Record], max_records: int = PACK_RECORDS,
           max_bytes: int = PACK_BYTES) -> Iterator[Sequence[Record]]:
    """Consecutive runs of ``records`` of at most ``max_records`` records and about ``max_bytes``
    bytes of values (a single larger record is a run of its own)."""
    start, size = 0, 0
    for i, (_key, value) in enumerate(records):
        length = len(value) if value is not None else 0
        if i > start and (i - start >= max_records or size + length > max_bytes):
            yield records[start:i]
            start, size = i, 0
        size += length
    if start < len(records):
        yield records[start:]
