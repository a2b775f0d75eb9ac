"""Stage 1 (partitioned by asset): trade bars -> per-asset rings -> asset-stats (pure, no Faust).

The Faust shell hands it a batch of raw messages with their partitions; it returns what to write:
table changes for the changelog (per bucket, absolute), bucket records for the sector stage, and
dead letters. Rebuilt from the table after a restart or rebalance.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Container, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from services.common.events import InvalidEvent
from services.processor.assetbook import APPLIED, DUPLICATE, AssetBook, Bucket, stats_value
from services.processor.emitter import Conflator
from services.processor.reference import Universe
from services.processor.validate import DEFAULT_BOUNDS, Bounds, parse_bar
from services.processor.watermark import progress_record, source_key

TableChange = tuple[int, str, bytes | None]     # (partition, key, value or None to delete)


def bucket_key(asset: str, minute: int) -> str:
    return f"{asset}|{minute}"


def split_key(key: str) -> tuple[str, int]:
    asset, minute = key.rsplit("|", 1)
    return asset, int(minute)


def minute_record(asset: str, minute: int, bucket: Bucket | list[Any], src: int | None = None,
                  wm: int | None = None) -> bytes:
    """What the sector stage receives for a changed bucket: its absolute value, without bar ids, and
    its source trade-bars partition with that partition's progress before the batch (when known).
    ``bucket`` may be given as its ``to_json(with_ids=False)`` list."""
    data = bucket.to_json(with_ids=False) if isinstance(bucket, Bucket) else bucket
    rec: dict[str, Any] = {"asset": asset, "minute": minute, "bucket": data}
    if src is not None:
        rec["src"] = src
        if wm is not None:
            rec["wm"] = wm
    return orjson.dumps(rec)


def pack_records(records: Iterable[tuple[str, bytes]]) -> bytes:
    """The records of one batch as one message (a JSON array, applied in order by the sector stage)."""
    return b"[" + b",".join(record for _key, record in records) + b"]"


@dataclass
class BarBatch:
    table: list[TableChange] = field(default_factory=list)
    records: list[tuple[str, bytes]] = field(default_factory=list)
    deadletters: list[tuple[bytes | None, str]] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    trades: int = 0
    max_ts_recv: int = 0


class AssetStage:
    def __init__(self, universe: Universe, emit_interval: float, bounds: Bounds = DEFAULT_BOUNDS) -> None:
        self.universe = universe
        self.bounds = bounds
        self.books: dict[str, AssetBook] = {}
        self.partition_of: dict[str, int] = {}
        self.emit = Conflator(emit_interval)
        self.ts_recv: dict[str, int] = {}
        self.progress: dict[int, int] = {}    # trade-bars partition -> largest bar ts applied from it

    def book(self, asset: str) -> AssetBook:
        book = self.books.get(asset)
        if book is None:
            book = self.books[asset] = AssetBook(asset)
        return book

    def apply(self, messages: Iterable[tuple[bytes | None, int] | tuple[bytes | None, int, bytes | None]],
              behind: Container[int] = ()) -> BarBatch:
        """Messages as (value, partition) or (value, partition, key): a key must name the bar's
        base asset. ``behind``: partitions the consumer has not read to their end (reported with
        the progress)."""
        out = BarBatch()
        touched: dict[tuple[str, int], int] = {}
        before = dict(self.progress)
        seen: set[int] = set()
        for message in messages:
            raw, partition = message[0], message[1]
            try:
                bar = parse_bar(raw, self.universe, self.bounds, message[2] if len(message) > 2 else False)
            except InvalidEvent as exc:
                out.deadletters.append((raw, str(exc)))
                out.outcomes["deadletter"] += 1
                continue
            self.progress[partition] = max(self.progress.get(partition, bar.ts_last), bar.ts_last)
            seen.add(partition)
            asset = bar.base
            book = self.book(asset)
            outcome, evicted = book.apply(bar)
            out.outcomes[outcome] += 1
            if outcome == APPLIED:
                out.trades += bar.count
            if outcome in (APPLIED, DUPLICATE):   # a duplicate re-sends its bucket (redelivery after a crash)
                touched[(asset, bar.minute)] = partition
                self.partition_of[asset] = partition
                self.emit.mark(asset)
                self.ts_recv[asset] = max(self.ts_recv.get(asset, 0), bar.ts_recv)
                out.max_ts_recv = max(out.max_ts_recv, bar.ts_recv)
            for minute in evicted:
                touched.pop((asset, minute), None)
                out.table.append((partition, bucket_key(asset, minute), None))
        for (asset, minute), partition in touched.items():
            row = self.books[asset].buckets.json_at(minute)
            if row is None:
                continue
            out.table.append((partition, bucket_key(asset, minute), orjson.dumps(row)))
            row[-1] = []                                  # the sector stage gets no bar ids
            out.records.append((asset, minute_record(asset, minute, row, partition, before.get(partition))))
        # after the buckets (same single-partition topic, so in order): each source's new progress
        for partition in sorted(seen):
            out.records.append((source_key(partition),
                                progress_record(partition, self.progress[partition], partition not in behind)))
        return out

    def rebuild(self, items: Iterable[tuple[str, bytes]]) -> None:
        """Replace the in-memory books by the table's content (after recovery)."""
        self.books.clear()
        for key, raw in items:
            asset, minute = split_key(key)
            bucket = Bucket.from_json(orjson.loads(raw))
            book = self.book(asset)
            book.buckets[minute] = bucket
            book.now_ts = max(book.now_ts, bucket.close_key[0])
        for asset in self.books:
            self.emit.mark(asset)

    def value(self, asset: str) -> dict[str, Any] | None:
        book = self.books.get(asset)
        stats = book.stats() if book else None
        if book is None or stats is None:
            return None
        info = self.universe.get(asset)
        return stats_value(asset, stats, book.now_ts, info.circulating_supply if info else None,
                           list(info.sectors) if info else [])

    def due(self, now: float, limit: int | None = None) -> list[tuple[str, dict[str, Any]]]:
        """Asset-stats values to emit now (conflated, changed only; of at most ``limit`` assets)."""
        out = []
        for asset in self.emit.ready(now, limit):
            value = self.value(asset)
            if value is not None and self.emit.changed(asset, value, now):
                out.append((asset, value))
        return out

    def on_universe_change(self) -> None:
        for asset in self.books:
            self.emit.mark(asset)
