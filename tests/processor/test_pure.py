"""Unit tests of the pure processor modules: rings, asset stats, liquidation totals, conflation."""

from __future__ import annotations

import orjson

from services.common.events import InvalidEvent
from services.processor.assetbook import APPLIED, DUPLICATE, LATE_DROPPED, AssetBook
from services.processor.emitter import Conflator
from services.processor.liqbook import LiqBook
from services.processor.reference import bundled_universe
from services.processor.timeutil import MINUTE_MS, RING_MINUTES
from services.processor.validate import parse_bar
from tests.processor.helpers import T0, bar, liquidation

DAY = 1_440 * MINUTE_MS


def test_price_24h_change_and_volumes_follow_the_definitions() -> None:
    book = AssetBook("BTC")
    book.apply(bar("BTC", T0, T0 + 10, (100, 100, 100, 100), 1_000, seq=1))          # previous 24 h
    book.apply(bar("BTC", T0 + DAY, T0 + DAY + 5, (110, 120, 105, 118), 3_000, seq=2))  # inside 24 h
    book.apply(bar("BTC", T0 + DAY + 61_000, T0 + DAY + 61_000, (119, 121, 119, 121), 500, seq=3))
    stats = book.stats()
    assert stats is not None
    assert stats.price == 121 and stats.price_24h_ago == 100
    assert (stats.open_24h, stats.high_24h, stats.low_24h) == (110, 121, 105)
    assert stats.volume_24h == 3_500 and stats.volume_prev_24h == 1_000


def test_duplicates_and_events_older_than_the_ring_are_not_applied() -> None:
    book = AssetBook("ETH")
    first = bar("ETH", T0 + 2 * DAY, T0 + 2 * DAY, (1, 1, 1, 1), 10, seq=1)
    assert book.apply(first)[0] == APPLIED
    assert book.apply(first)[0] == DUPLICATE
    late = bar("ETH", T0 + 2 * DAY - RING_MINUTES * MINUTE_MS, T0 + 2 * DAY - RING_MINUTES * MINUTE_MS, (2, 2, 2, 2),
               10, seq=2)
    assert book.apply(late)[0] == LATE_DROPPED
    inside = bar("ETH", T0 + 2 * DAY - 100 * MINUTE_MS, T0 + 2 * DAY - 100 * MINUTE_MS, (3, 3, 3, 3), 7, seq=3)
    assert book.apply(inside)[0] == APPLIED
    stats = book.stats()
    assert stats is not None and stats.volume_24h == 17 and stats.price == 1


def test_old_buckets_are_evicted_when_time_moves_on() -> None:
    book = AssetBook("SOL")
    book.apply(bar("SOL", T0, T0, (5, 5, 5, 5), 1, seq=1))
    _, evicted = book.apply(bar("SOL", T0 + 3 * DAY, T0 + 3 * DAY, (6, 6, 6, 6), 1, seq=2))
    assert evicted == [T0] and list(book.buckets) == [T0 + 3 * DAY]


def test_liquidation_windows_scopes_and_largest() -> None:
    book = LiqBook()
    book.apply(liquidation("BTC", T0, "long", 1_000, 100, seq=1))
    book.apply(liquidation("ETH", T0 + 2 * 3_600_000, "short", 5_000, 10, exchange="bybit", seq=2))
    book.apply(liquidation("BTC", T0 + 2 * 3_600_000 + 1, "long", 2_000, 99, seq=3))
    assert book.apply(liquidation("BTC", T0 + 2 * 3_600_000 + 1, "long", 2_000, 99, seq=3))[0] == DUPLICATE
    totals = book.totals()
    assert totals["24h:all"]["total_usd"] == 8_000 and totals["24h:all"]["count"] == 3
    assert totals["1h:all"]["long_usd"] == 2_000 and totals["1h:all"]["short_usd"] == 5_000
    assert totals["24h:asset:BTC"]["long_count"] == 2
    assert totals["1h:exchange:bybit"]["largest"]["notional_usd"] == 5_000
    assert totals["24h:all"]["largest"]["exchange"] == "bybit"


def test_conflation_emits_at_most_once_per_interval_and_only_changes() -> None:
    c = Conflator(1.0)
    c.mark("a")
    assert c.ready(10.0) == ["a"] and c.changed("a", 1, 10.0)
    c.mark("a")
    assert c.ready(10.5) == []
    assert c.ready(11.0) == ["a"] and not c.changed("a", 1, 11.0)
    c.mark("a")
    assert c.ready(11.1) == ["a"] and c.changed("a", 2, 11.1)


def test_bad_bars_have_a_reason() -> None:
    universe = bundled_universe()
    good = bar("BTC", T0, T0 + 1, (1, 2, 1, 2), 5)
    assert parse_bar(orjson.dumps(good), universe).base == "BTC"
    cases = {
        b"{nope": "not JSON",
        orjson.dumps({**orjson.loads(orjson.dumps(good)), "close": float("nan")}): "close",
        orjson.dumps({**orjson.loads(orjson.dumps(good)), "close": 0}): "close",
        orjson.dumps(bar("NOPE", T0, T0 + 1, (1, 2, 1, 2), 5)): "unknown asset",
        orjson.dumps(bar("BTC", T0, T0 + 1, (1, 2, 1, 2), 5, quote="EUR")): "USD quote",
        orjson.dumps(bar("BTC", T0, T0 + MINUTE_MS, (1, 2, 1, 2), 5)): "minute",
    }
    for raw, reason in cases.items():
        try:
            parse_bar(raw, universe)
        except InvalidEvent as exc:
            assert reason in str(exc)
        else:
            raise AssertionError(f"accepted {raw!r}")
