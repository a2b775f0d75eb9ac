"""Edge cases of the compact minute-bucket ring (services.processor.assetbook.BucketRing).

A reference book (a plain ``dict[minute, Bucket]`` with the documented ring rules) is the oracle
for random streams: wraparound over several rings, late bars inside the ring, bars older than the
ring, duplicates, several bars per minute with tied keys, and jumps of more than one ring.
"""

from __future__ import annotations

import random

from services.common.events import TradeBar
from services.processor.assetbook import (
    APPLIED,
    DUPLICATE,
    LATE_DROPPED,
    AssetBook,
    Bucket,
    BucketRing,
    WindowStats,
)
from services.processor.timeutil import (
    DAY_MINUTES,
    MINUTE_MS,
    RING_MINUTES,
    minute_of,
    ring_start,
    window_start,
)
from tests.processor.helpers import T0, bar

RING_MS = RING_MINUTES * MINUTE_MS
DAY_MS = DAY_MINUTES * MINUTE_MS


class ReferenceBook:
    """The ring semantics of docs/semantics.md on a dict of Bucket objects."""

    def __init__(self) -> None:
        self.buckets: dict[int, Bucket] = {}
        self.now_ts = -1

    def apply(self, b: TradeBar) -> tuple[str, list[int]]:
        if self.now_ts >= 0 and b.minute < ring_start(minute_of(self.now_ts)):
            return LATE_DROPPED, []
        bucket = self.buckets.get(b.minute)
        if bucket is not None and bucket.has(b.id):
            return DUPLICATE, []
        if bucket is None:
            self.buckets[b.minute] = Bucket.of_bar(b)
        else:
            bucket.add(b)
        self.now_ts = max(self.now_ts, b.ts_last)
        start = ring_start(minute_of(self.now_ts))
        gone = sorted(m for m in self.buckets if m < start)
        for m in gone:
            del self.buckets[m]
        return APPLIED, gone


def random_bar(rng: random.Random, ts: int, seq: int) -> TradeBar:
    minute = minute_of(ts)
    first = rng.choice((minute, minute + 7_000, ts))                    # ties of ts_first across bars
    last = max(first, rng.choice((minute + 59_000, ts)))                # ...and of ts_last
    price = rng.uniform(1, 100)
    return bar("BTC", first, last, (price, price * 1.01, price * 0.99, price), rng.uniform(1, 1e6),
               count=rng.randint(1, 5), exchange=rng.choice(("okx", "bybit")), seq=seq,
               ts_recv=last + rng.choice((0, 3)))


def contents(buckets: dict[int, Bucket] | BucketRing) -> list[tuple[int, list[object]]]:
    return [(m, b.to_json()) for m, b in sorted(buckets.items())]


def test_random_streams_equal_the_reference_book() -> None:
    for seed in range(6):
        rng = random.Random(seed)
        book, ref = AssetBook("BTC"), ReferenceBook()
        now = T0
        sent: list[TradeBar] = []
        for seq in range(3_000):
            move = rng.random()
            if move < 0.02:
                now += rng.randint(RING_MINUTES, 2 * RING_MINUTES) * MINUTE_MS       # a jump beyond the ring
            elif move < 0.6:
                now += rng.randint(0, 5) * MINUTE_MS
            if sent and rng.random() < 0.15:
                b = rng.choice(sent)                                                # redelivery, maybe late
            else:
                lateness = rng.choice((0, 0, 0, rng.randint(0, RING_MS + 10 * MINUTE_MS)))
                b = random_bar(rng, now - lateness + rng.randint(0, 59_999), seq)
                sent.append(b)
            assert book.apply(b) == ref.apply(b), (seed, seq)
            assert book.now_ts == ref.now_ts
        assert contents(book.buckets) == contents(ref.buckets)
        assert len(book.buckets) == len(ref.buckets) <= RING_MINUTES
        for at in (ref.now_ts, ref.now_ts - DAY_MS // 2, ref.now_ts + DAY_MS):
            assert book.stats(at) == reference_stats(ref.buckets, at), (seed, at)
        assert_range_queries(book.buckets, ref.buckets, rng)


def assert_range_queries(ring: BucketRing, buckets: dict[int, Bucket], rng: random.Random) -> None:
    held = sorted(buckets)
    assert ring.oldest() == (held[0] if held else None)
    for _ in range(200):
        at = minute_of(rng.randint(held[0] - DAY_MS, held[-1] + DAY_MS)) if held else T0
        before = [m for m in held if m <= at]
        assert ring.latest_at(at) == (before[-1] if before else None)
        assert ring.close_at(at) == (buckets[before[-1]].close if before else None)
        end = at + rng.choice((1, 60, 1_440)) * MINUTE_MS
        assert contents(dict(ring.between(at, end))) == contents({m: buckets[m] for m in held if at <= m < end})


def reference_stats(buckets: dict[int, Bucket], now: int) -> WindowStats | None:
    """The figures of docs/semantics.md by a direct scan of (minute, Bucket) pairs."""
    now_minute = minute_of(now)
    ws = window_start(now_minute, DAY_MINUTES)
    held = sorted((m, b) for m, b in buckets.items() if m <= now_minute)
    if not held:
        return None
    inside = [b for m, b in held if m >= ws]
    before = [b for m, b in held if m < ws]
    open_24h = inside[0].open if inside else None
    return WindowStats(
        max((b for _m, b in held), key=lambda b: b.close_key).close,
        before[-1].close if before else open_24h, open_24h,
        max(b.high for b in inside) if inside else None, min(b.low for b in inside) if inside else None,
        sum(b.notional for b in inside), sum(b.notional for m, b in held if ws - DAY_MS <= m < ws),
        sum(b.trades for b in inside))


def test_wraparound_keeps_exactly_one_ring_and_evicts_in_order() -> None:
    book = AssetBook("ETH")
    evicted: list[int] = []
    for i in range(3 * RING_MINUTES):
        ts = T0 + i * MINUTE_MS
        outcome, gone = book.apply(bar("ETH", ts, ts + 1, (1, 1, 1, 1), 10, seq=i))
        assert outcome == APPLIED
        evicted.extend(gone)
    assert evicted == [T0 + i * MINUTE_MS for i in range(2 * RING_MINUTES)]
    assert list(book.buckets) == [T0 + i * MINUTE_MS for i in range(2 * RING_MINUTES, 3 * RING_MINUTES)]
    assert len(book.buckets.live) < RING_MINUTES * 3 // 2      # evicted slots are cut off as time moves
    last = T0 + (3 * RING_MINUTES - 1) * MINUTE_MS
    assert book.apply(bar("ETH", last, last + 2, (1, 1, 1, 1), 10, seq=3 * RING_MINUTES - 1))[0] == DUPLICATE
    stats = book.stats()
    assert stats is not None and stats.volume_24h == 14_400 and stats.trades_24h == 1_440


def test_late_bar_inside_the_ring_before_the_oldest_bucket_and_older_than_the_ring() -> None:
    book = AssetBook("SOL")
    now = T0 + 2 * RING_MS
    assert book.apply(bar("SOL", now, now, (5, 5, 5, 5), 1, seq=1))[0] == APPLIED
    early = now - (RING_MINUTES - 1) * MINUTE_MS                 # the ring's oldest minute
    assert book.apply(bar("SOL", early, early, (4, 4, 4, 4), 2, seq=2)) == (APPLIED, [])
    assert list(book.buckets) == [early, now]
    too_old = now - RING_MS
    assert book.apply(bar("SOL", too_old, too_old, (3, 3, 3, 3), 3, seq=3)) == (LATE_DROPPED, [])
    assert too_old not in book.buckets and len(book.buckets) == 2
    stats = book.stats()
    assert stats is not None and stats.price == 5 and stats.price_24h_ago == 4 and stats.volume_prev_24h == 2


def test_duplicate_ids_across_several_bars_of_a_minute_and_after_eviction() -> None:
    book = AssetBook("BTC")
    a = bar("BTC", T0 + 5, T0 + 9, (10, 11, 9, 10), 100, seq=1)
    b = bar("BTC", T0 + 5, T0 + 9, (12, 13, 8, 12), 50, seq=2)         # ties a on ts_first and ts_last
    assert book.apply(a)[0] == book.apply(b)[0] == APPLIED
    assert book.apply(a)[0] == book.apply(b)[0] == DUPLICATE
    bucket = book.buckets[T0]
    assert bucket.ids == {a.id, b.id} and bucket.notional == 150 and bucket.trades == 2
    assert bucket.open_key == (T0 + 5, min(a.id, b.id)) and bucket.close_key[2] == max(a.id, b.id)
    assert (bucket.high, bucket.low) == (13, 8)
    later = T0 + RING_MS
    book.apply(bar("BTC", later, later, (1, 1, 1, 1), 1, seq=3))
    assert T0 not in book.buckets and book.apply(a)[0] == LATE_DROPPED


def test_the_id_arena_is_compacted_without_losing_ids() -> None:
    book = AssetBook("BTC")
    bars = [bar("BTC", T0 + i * MINUTE_MS, T0 + i * MINUTE_MS, (1, 1, 1, 1), 1, seq=10**12 + i)
            for i in range(2 * RING_MINUTES)]
    for b in bars:
        book.apply(b)
    ring = book.buckets
    assert len(ring.arena) < 2 * RING_MINUTES * len(bars[0].id) * 3 // 4   # evicted ids were dropped
    assert all(book.apply(b)[0] == DUPLICATE for b in bars[RING_MINUTES:])


def test_buckets_stored_without_ids_keep_their_figures() -> None:
    ring = BucketRing()
    source = Bucket.of_bar(bar("ETH", T0 + 1, T0 + 2, (3, 4, 2, 3.5), 7, count=4, seq=5))
    mirrored = Bucket.from_json(source.to_json(with_ids=False))
    ring[T0] = mirrored
    got = ring[T0]
    assert (got.open, got.high, got.low, got.close, got.notional, got.trades) == (3, 4, 2, 3.5, 7, 4)
    assert got.open_key == (T0 + 1, "") and got.close_key == (T0 + 2, source.close_key[1], "")
    assert got.ids is None and len(ring.idn) == 0                       # no id columns allocated
    ring[T0 + RING_MS] = mirrored                                         # a minute one ring later
    assert list(ring) == [T0 + RING_MS]
    ring[T0] = mirrored                                                  # now older than the ring: not kept
    assert list(ring) == [T0 + RING_MS]
    del ring[T0 + RING_MS]
    assert len(ring) == 0 and ring.get(T0 + RING_MS) is None
