"""Every closed candle is emitted, even when a fast replay crosses many intervals between two
emissions of the (conflated) forming candle; the closes agree with the oracle's batch candles."""

from __future__ import annotations

from services.processor.assetbook import Bucket
from services.processor.reference import bundled_universe
from services.processor.stage_assets import minute_record
from services.processor.stage_sectors import SectorStage
from services.processor.timeutil import MINUTE_MS
from tests.processor.helpers import T0, bar

HOUR = 60 * MINUTE_MS
DAY = 24 * HOUR
DAYS = 8


def replay(stage: SectorStage, days: int) -> list[tuple[int, float]]:
    """One BTC bar every 30 minutes for ``days`` days plus one, applied in one batch; returns the
    (open_time, close) of each whole day."""
    records, daily = [], []
    for i in range(days * 48 + 1):
        ts = T0 + i * 30 * MINUTE_MS
        price = 100.0 + i
        b = bar("BTC", ts, ts + 1, (price, price, price, price), 1_000.0, seq=i)
        records.append(minute_record("BTC", b.minute, Bucket.of_bar(b)))
        if i % 48 == 47:
            daily.append((T0 + (i // 48) * DAY, price))
    stage.apply(records)
    return daily


def test_a_replay_within_one_emission_interval_publishes_every_daily_close() -> None:
    universe = bundled_universe()
    stage = SectorStage(universe, emit_interval=60.0)
    daily = replay(stage, DAYS)
    out = stage.due_candles(now=0.0)
    closes = [(c["open_time"], c["close"]) for c in out if c["series"] == "BTC" and c["interval"] == "1d"
              and c["closed"]]
    assert closes == daily
    hourly = [c for c in out if c["series"] == "BTC" and c["interval"] == "1h" and c["closed"]]
    assert len(hourly) == DAYS * 24
    total = [c for c in out if c["series"] == "total" and c["interval"] == "1d" and c["closed"]]
    assert [c["open_time"] for c in total] == [t for t, _ in daily]
    assert all(c["high"] >= c["close"] >= c["low"] > 0 for c in total)
    assert all(a["close"] < b["close"] for a, b in zip(total, total[1:], strict=False))  # BTC only rises
    assert {c["series"] for c in out if not c["closed"]} >= {"BTC", "total"}
    # the conflated forming candle follows the closes and conflation holds back the next one
    assert out[-1]["closed"] is False
    stage.apply([])
    assert stage.due_candles(now=1.0) == []


def test_closes_are_queued_once_and_not_again_after_a_rebuild() -> None:
    stage = SectorStage(bundled_universe(), emit_interval=0.0)
    replay(stage, 2)
    first = [c for c in stage.due_candles(now=0.0) if c["closed"]]
    assert first
    stage.rebuild([])
    assert [c for c in stage.due_candles(now=1.0) if c["closed"]] == []


def test_forming_candles_have_their_own_conflation_interval() -> None:
    """Sector values follow the emit interval (0.2 s), forming candles the candle interval (1 s);
    closed candles are never held back by either."""
    stage = SectorStage(bundled_universe(), emit_interval=0.2, candle_interval=1.0)
    replay(stage, 2)
    first = stage.due_candles(now=0.0)
    assert any(c["closed"] for c in first) and any(not c["closed"] for c in first)
    assert stage.due_sectors(now=0.0)

    def next_minute(i: int) -> None:
        ts = T0 + 2 * DAY + (i + 1) * MINUTE_MS
        b = bar("BTC", ts, ts + 1, (200.0 + i,) * 4, 1_000.0, seq=10_000 + i)
        stage.apply([minute_record("BTC", b.minute, Bucket.of_bar(b))])

    next_minute(0)
    assert stage.due_sectors(now=0.3)                                   # 0.3 s later: sectors again
    held = stage.due_candles(now=0.3)
    assert held and all(c["closed"] for c in held)                      # the minute that closed, nothing forming
    next_minute(1)
    assert any(not c["closed"] and c["series"] == "BTC" for c in stage.due_candles(now=1.1))
