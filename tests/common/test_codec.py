"""``codec.kept``: a value held for long costs its own size, not orjson's serialization buffer."""

from __future__ import annotations

import tracemalloc

import orjson

from services.common.codec import kept

RECORD = {"asset": "BTC", "minute": 1_737_936_000_000, "bucket": [1.0, [1, "a"], 2.0, 0.5, 1.5, [2, 3, "b"], 9.0, 4, []]}


def traced(make: object) -> int:
    """Bytes still allocated after keeping 2,000 results of ``make()``."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        held = [make() for _ in range(2_000)]       # type: ignore[operator]
        size = tracemalloc.get_traced_memory()[0] - before
        assert len(held) == 2_000
        return size
    finally:
        tracemalloc.stop()


def test_a_kept_value_equals_the_serialization_and_costs_about_its_length() -> None:
    raw = orjson.dumps(RECORD)
    assert kept(raw) == raw and isinstance(kept(raw), bytes)
    per_value = traced(lambda: kept(orjson.dumps(RECORD))) / 2_000
    assert per_value < len(raw) + 100, (per_value, len(raw))


def test_orjson_results_kept_as_they_are_cost_more_than_kept_copies() -> None:
    """Why ``kept`` exists: orjson returns bytes backed by its whole buffer (>= 1 KB before 3.12,
    >= 4 KB since), which a table of 300k records multiplies."""
    assert traced(lambda: orjson.dumps(RECORD)) > 1.5 * traced(lambda: kept(orjson.dumps(RECORD)))
