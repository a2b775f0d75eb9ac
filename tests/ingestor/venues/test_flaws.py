"""Regression tests of issue 16's venue flaws, through the ingestor's own pipeline: OKX aggregated
trades are not gaps, identical Bybit liquidation rows are two liquidations, a bad row of a
multi-row frame is dead-lettered alone on every venue, Gate trades without ``create_time_ms``."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from services.common import topics
from services.common.frames import RawFrame
from services.ingestor.instruments import load_instruments
from services.ingestor.pipeline import Pipeline
from services.ingestor.venues import registry
from services.ingestor.venues.base import UNKNOWN_INSTRUMENT, FrameError
from tests.ingestor.fakes import bitmex, bybit, deribit, gate, okx
from tests.ingestor.fakes.samples import BASE_TS

Record = tuple[str, bytes, bytes]


def _run(venue: str, frames: list[str]) -> list[Record]:
    pipeline = Pipeline({venue: registry.get(venue, load_instruments(venue))})
    return [record for i, frame in enumerate(frames) for record in pipeline.process(RawFrame(venue, frame, BASE_TS + i))]


def _values(records: list[Record], topic: str) -> list[dict[str, Any]]:
    return [orjson.loads(value) for name, _, value in records if name == topic]


def _okx_trade(trade_id: int, count: int) -> str:
    row = {**okx.trade("BTC-USDT-SWAP", str(trade_id), "100000.0", "1", "buy", BASE_TS), "count": str(count)}
    return okx.trades_frame("BTC-USDT-SWAP", [row])


def test_okx_aggregated_trades_are_not_gaps() -> None:
    # tradeId is the last id of `count` fills: 120, 121-123, 124, 125-130 is an unbroken run
    records = _run("okx", [_okx_trade(120, 1), _okx_trade(123, 3), _okx_trade(124, 1), _okx_trade(130, 6)])
    assert _values(records, topics.TRADE_GAPS.name) == []
    assert len(_values(records, topics.TRADES.name)) == 4
    # 139-140 after 130: 131-138 are missing
    [gap] = _values(_run("okx", [_okx_trade(130, 6), _okx_trade(140, 2)]), topics.TRADE_GAPS.name)
    assert (gap["after_trade_id"], gap["before_trade_id"], gap["missing"]) == ("130", "139", 8)


def test_okx_count_larger_than_the_id_range_is_a_bad_row() -> None:
    with pytest.raises(FrameError):
        registry.get("okx", load_instruments("okx")).parse(_okx_trade(2, 5), BASE_TS)


def test_identical_bybit_liquidation_rows_are_two_liquidations() -> None:
    row = bybit.liquidation(BASE_TS, "BTCUSDT", "Buy", "0.5", "99500.1")
    frame = bybit.liquidations_frame("BTCUSDT", [row, dict(row), {**row, "v": "0.7"}])
    liquidations = _values(_run("bybit", [frame, frame]), topics.LIQUIDATIONS.name)   # redelivered once
    assert [liq["id"] for liq in liquidations] == [
        f"bybit:BTCUSDT:{BASE_TS}:Buy:0.5:99500.1", f"bybit:BTCUSDT:{BASE_TS}:Buy:0.5:99500.1:1",
        f"bybit:BTCUSDT:{BASE_TS}:Buy:0.7:99500.1"]


def test_identical_rows_next_to_a_bad_row_keep_their_ids() -> None:
    row = bybit.liquidation(BASE_TS, "BTCUSDT", "Sell", "0.5", "99500.1")
    frame = bybit.liquidations_frame("BTCUSDT", [row, dict(row), {**row, "s": "NOPEUSDT"}])
    records = _run("bybit", [frame])
    assert [liq["id"] for liq in _values(records, topics.LIQUIDATIONS.name)] == [
        f"bybit:BTCUSDT:{BASE_TS}:Sell:0.5:99500.1", f"bybit:BTCUSDT:{BASE_TS}:Sell:0.5:99500.1:1"]
    assert len(_values(records, topics.DEADLETTER.name)) == 1


def test_okx_liquidations_of_a_known_and_an_unknown_instrument() -> None:
    known = okx.detail("sell", "net", "40", "98000.5", BASE_TS)
    frame = orjson.loads(okx.liquidations_frame("SWAP", "BTC-USDT-SWAP", [known]))
    frame["data"].append({**frame["data"][0], "instId": "NOPE-USDT-SWAP", "details": [known]})
    records = _run("okx", [orjson.dumps(frame).decode()])
    [liquidation] = _values(records, topics.LIQUIDATIONS.name)
    assert liquidation["instrument"] == "BTC-USDT-PERP"
    [letter] = _values(records, topics.DEADLETTER.name)
    assert letter["reason"].startswith(f"{UNKNOWN_INSTRUMENT}: row 0: unknown instrument")
    assert orjson.loads(letter["raw"])["data"] == [frame["data"][1]]


def _mixed(venue: str) -> tuple[str, int]:
    """A frame of ``venue`` with two good rows and a row of an unknown instrument in between."""
    if venue == "bybit":
        rows = [bybit.trade(BASE_TS, symbol, "Buy", "0.1", "100000", f"id-{n}")
                for n, symbol in enumerate(("BTCUSDT", "NOPEUSDT", "BTCUSDT"))]
        return bybit.trades_frame("BTCUSDT", rows), 2
    if venue == "okx":
        rows = [okx.trade(symbol, str(500 + n), "100000.0", "1", "buy", BASE_TS)
                for n, symbol in enumerate(("BTC-USDT-SWAP", "NOPE-USDT-SWAP", "BTC-USDT-SWAP"))]
        return okx.trades_frame("BTC-USDT-SWAP", rows), 2
    if venue == "bitmex":
        rows = [bitmex.trade("2025-01-27T10:00:00.000Z", symbol, "Buy", 100, 100000.0, f"m-{n}")
                for n, symbol in enumerate(("XBTUSD", "NOPEUSD", "XBTUSD"))]
        return bitmex.table_frame("trade", "insert", rows), 2
    if venue == "deribit":
        rows = [deribit.trade(symbol, str(700 + n), 10 + n, BASE_TS, "buy", 100000.0, 10.0, None)
                for n, symbol in enumerate(("BTC-PERPETUAL", "NOPE-PERPETUAL", "BTC-PERPETUAL"))]
        return deribit.trades_frame("BTC-PERPETUAL", rows), 2
    rows = [gate.trade(symbol, 900 + n, 5, "100000", BASE_TS) for n, symbol in enumerate(("BTC_USDT", "NOPE_USDT",
                                                                                          "BTC_USDT"))]
    return gate.update_frame("futures.trades", rows), 2


@pytest.mark.parametrize("venue", ["bybit", "okx", "bitmex", "deribit", "gate"])
def test_bad_row_is_dead_lettered_alone(venue: str) -> None:
    frame, good = _mixed(venue)
    records = _run(venue, [frame])
    assert len(_values(records, topics.TRADES.name)) == good
    [letter] = _values(records, topics.DEADLETTER.name)
    assert letter["reason"].startswith(f"{UNKNOWN_INSTRUMENT}: row 1:")
    with pytest.raises(FrameError) as err:        # the letter is a one-row frame of the venue's format
        registry.get(venue, load_instruments(venue)).parse(letter["raw"], BASE_TS)
    assert err.value.reason_class == UNKNOWN_INSTRUMENT


def test_frame_whose_rows_are_all_bad_is_one_dead_letter_as_received() -> None:
    rows = [okx.trade("NOPE-USDT-SWAP", str(n), "1", "1", "buy", BASE_TS) for n in (1, 2)]
    frame = okx.trades_frame("NOPE-USDT-SWAP", rows)
    [letter] = _values(_run("okx", [frame]), topics.DEADLETTER.name)
    assert letter["raw"] == frame and "(and 1 more bad rows)" in letter["reason"]


def test_gate_trade_without_create_time_ms_uses_create_time_seconds() -> None:
    row = gate.trade("BTC_USDT", 27753479, -2500, "100000.1", 1737972000999)
    del row["create_time_ms"]
    [trade] = _values(_run("gate", [gate.update_frame("futures.trades", [row])]), topics.TRADES.name)
    assert (trade["ts"], trade["side"], trade["trade_id"]) == (1737972000000, "sell", "27753479")
