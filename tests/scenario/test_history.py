"""The backfilled history: schema-valid closed candles whose closes, with the live week's daily
closes appended, give the article's RSI(14) and SMAs (checked with TA-Lib and a plain mean)."""

from __future__ import annotations

import json

import jsonschema
import numpy
import pytest
import talib

from services.common.topics import CANDLE_HISTORY
from services.ingestor.instruments import load_instruments
from services.scenario.backfill import history_candles
from services.scenario.history import TOTAL_PEAK_0120, solve_total_closes
from services.scenario.source import open_scenario


def _closes() -> list[float]:
    history = [c["close"] for c in history_candles() if c["interval"] == "1d"]
    return history + list(solve_total_closes().live)


def test_rsi_crosses_below_50_between_the_24th_and_the_27th() -> None:
    rsi = talib.RSI(numpy.array(_closes()), timeperiod=14)
    assert rsi[-4] == pytest.approx(57, abs=0.05)      # 2025-01-24
    assert rsi[-1] == pytest.approx(43, abs=0.05)      # 2025-01-27
    assert rsi[-4] > 50 > rsi[-1]


def test_smas_and_local_high() -> None:
    closes = _closes()
    assert sum(closes[-50:]) / 50 == pytest.approx(3.362e12, rel=1e-4)
    assert sum(closes[-100:]) / 100 == pytest.approx(3.10e12, rel=1e-4)
    assert closes[-1] > sum(closes[-50:]) / 50            # testing the SMA50 from above
    assert max(c["high"] for c in history_candles()) < TOTAL_PEAK_0120 * 0.99


def test_reference_records_are_schema_valid_closed_candles() -> None:
    schema = json.loads(CANDLE_HISTORY.schema_path.read_text())
    records = list(open_scenario(instruments=load_instruments, density=0.1).reference_records())
    daily = [v for _, k, v in records if k == "total:1d"]
    hourly = [v for _, k, v in records if k == "total:1h"]
    assert (len(daily), len(hourly)) == (120, 240)
    for topic, key, value in records:
        assert topic is CANDLE_HISTORY
        assert key == f"{value['series']}:{value['interval']}"
        jsonschema.validate(value, schema)
        assert value["closed"] is True
        assert value["low"] <= min(value["open"], value["close"]) <= max(value["open"], value["close"]) <= value["high"]
    by_day = {c["open_time"]: c for c in daily}
    for i in range(0, 240, 24):      # each day's last hour closes at the day's close
        day = by_day[hourly[i]["open_time"]]
        assert hourly[i + 23]["close"] == day["close"]
        assert hourly[i]["open"] == day["open"]
