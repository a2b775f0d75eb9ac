"""Poison pills on candle-history become dead letters with a reason; the good candles around them
still seed the engine (the reader used to crash on a non-integer open_time, at every restart)."""

from __future__ import annotations

import json
from typing import Any, cast

import orjson

from services.processor.context import Context
from services.processor.reference import bundled_universe
from services.processor.reference_io import seed_history
from services.processor.settings import ProcessorSettings
from services.processor.signals import SignalEngine
from services.processor.stage_assets import AssetStage
from services.processor.stage_liquidations import LiquidationStage
from services.processor.stage_sectors import SectorStage
from tests.processor.helpers import T0


def context(letters: list[tuple[str, bytes | None, str]]) -> Context:
    universe = bundled_universe()
    ctx = Context(settings=ProcessorSettings(), kafka=cast(Any, None), universe=universe,
                  assets=AssetStage(universe, 1.0), liquidations=LiquidationStage(1.0),
                  sectors=SectorStage(universe, 1.0), signals=SignalEngine(ProcessorSettings()))
    ctx.send_deadletters = lambda stream, items: letters.extend((stream, raw, why) for raw, why in items)
    return ctx


def test_junk_history_records_are_dead_letters_and_the_rest_is_seeded() -> None:
    letters: list[tuple[str, bytes | None, str]] = []
    ctx = context(letters)
    good = {"series": "total", "interval": "1d", "open_time": T0, "open": 1.0, "high": 2.0, "low": 0.5,
            "close": 1.5, "closed": True, "ts": T0 + 86_399_999}
    junk = [b'{"open_time":"abc"}', b"[1,2]", b"not json", json.dumps({**good, "open_time": 2**70}).encode(),
            orjson.dumps({**good, "series": None, "open_time": T0 + 1}), None]
    seed_history(ctx, [*junk, orjson.dumps(good)])
    assert [stream for stream, _, _ in letters] == ["candle_history"] * len(junk)
    assert all(why for _, _, why in letters)
    assert ctx.signals.series_state("total:1d") is not None
