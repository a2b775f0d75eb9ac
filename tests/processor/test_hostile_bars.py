"""Hostile trade bars and liquidations (issue 14): far-future event time, integers beyond int64,
a key naming another asset, implausible amounts. Each is a dead letter with a reason before any
state changes: the stages' figures, memory and candle closes stay what they were."""

from __future__ import annotations

import json
import tracemalloc
from typing import Any

import orjson
import pytest

from services.common.events import InvalidEvent
from services.processor.reference import bundled_universe
from services.processor.stage_assets import AssetStage
from services.processor.stage_sectors import SectorStage
from services.processor.validate import Bounds, parse_liquidation
from tests.processor.helpers import T0, bar, liquidation

NOW_S = (T0 + 3_600_000) / 1000            # the wall clock of these tests: an hour after T0
BOUNDS = Bounds(clock=lambda: NOW_S)
YEAR_3000 = 32_503_680_000_000


def as_dict(b: Any) -> dict[str, Any]:
    return dict(orjson.loads(orjson.dumps(b)))


def good_bars() -> list[bytes]:
    return [orjson.dumps(bar("BTC", T0 + i * 20_000, T0 + i * 20_000 + 1, (100.0 + i,) * 4, 1_000.0, seq=i))
            for i in range(30)]


def hostile() -> dict[str, bytes]:
    base = as_dict(bar("BTC", T0 + 600_000, T0 + 600_001, (150.0,) * 4, 1_000.0, seq=999))
    future = YEAR_3000 // 60_000 * 60_000
    return {
        "ts_recv": orjson.dumps({**base, "minute": future, "ts_first": future, "ts_last": future,
                                 "ts_recv": future + 5}),
        "after its ts_recv": orjson.dumps({**base, "minute": T0 + 900_000 + 600_000,
                                           "ts_first": T0 + 1_500_000, "ts_last": T0 + 1_500_001}),
        "64-bit": json.dumps({**base, "count": 2**63}).encode(),
        "notional_usd": orjson.dumps({**base, "notional_usd": 1e30, "buy_notional_usd": 0.0}),
        "price": orjson.dumps({**base, "open": 1e300, "high": 1e300, "close": 1e300}),
    }


def stages() -> tuple[AssetStage, SectorStage]:
    universe = bundled_universe()
    return AssetStage(universe, 0.0, BOUNDS), SectorStage(universe, 0.0)


def run(assets: AssetStage, sectors: SectorStage, messages: list[tuple[bytes, int, bytes]]) -> list[str]:
    batch = assets.apply(messages)
    sectors.apply((record for _key, record in batch.records), now=0.0)
    return [reason for _raw, reason in batch.deadletters]


@pytest.mark.parametrize("reason", sorted(hostile()))
def test_a_hostile_bar_is_a_dead_letter_and_changes_nothing(reason: str) -> None:
    clean_assets, clean_sectors = stages()
    run(clean_assets, clean_sectors, [(raw, 0, b"BTC") for raw in good_bars()])
    assets, sectors = stages()
    tracemalloc.start()
    letters = run(assets, sectors, [(raw, 0, b"BTC") for raw in good_bars()[:15]]
                  + [(hostile()[reason], 0, b"BTC")] + [(raw, 0, b"BTC") for raw in good_bars()[15:]])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(letters) == 1 and reason in letters[0]
    assert peak < 20_000_000                      # no allocation per minute of an event-time jump
    assert assets.value("BTC") == clean_assets.value("BTC")
    assert sectors.sector_values(["total"]) == clean_sectors.sector_values(["total"])
    assert [c for c in sectors.due_candles(0.0) if c["closed"]] == \
        [c for c in clean_sectors.due_candles(0.0) if c["closed"]]


def test_a_bar_keyed_by_another_asset_is_a_dead_letter() -> None:
    assets, sectors = stages()
    letters = run(assets, sectors, [(good_bars()[0], 0, b"ETH"), (good_bars()[1], 0, None)])
    assert len(letters) == 2 and all("key" in why for why in letters)
    assert assets.value("BTC") is None


def test_implausible_liquidations_are_refused() -> None:
    universe = bundled_universe()
    ok = liquidation("BTC", T0, "long", 1e6, 100_000.0)
    assert parse_liquidation(orjson.dumps(ok), universe, BOUNDS).notional_usd == 1e6
    for changed, reason in (({"notional_usd": 1e30}, "notional_usd"), ({"ts": YEAR_3000}, "after its ts_recv"),
                            ({"ts": YEAR_3000, "ts_recv": YEAR_3000}, "wall clock")):
        with pytest.raises(InvalidEvent, match=reason):
            parse_liquidation(orjson.dumps({**as_dict(ok), **changed}), universe, BOUNDS)
