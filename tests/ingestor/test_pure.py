"""Pure parts: instrument snapshot and REST parsers, dedupe, gap detection, micro-bars, pipeline."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import orjson
import pytest
from prometheus_client import REGISTRY

from services.common import topics
from services.common.events import Trade, TradeBar
from services.common.frames import RawFrame
from services.common.settings import load
from services.ingestor import instruments
from services.ingestor.bars import BarBuilder
from services.ingestor.dedupe import Deduper
from services.ingestor.gaps import GapDetector
from services.ingestor.instruments import load_instruments
from services.ingestor.observer import TallyObserver
from services.ingestor.pipeline import Pipeline
from services.ingestor.refresh import refresh_from_rest
from services.ingestor.service import build_pipeline
from services.ingestor.settings import IngestorSettings
from services.ingestor.sources import (
    RecordingWriter,
    SourceError,
    Unreadable,
    paced,
    parse_speed,
    read_recording,
)
from services.ingestor.venues.binance_usdm import BinanceUsdm
from services.ingestor.venues.bybit import Bybit
from services.ingestor.venues.common import split_thousands
from services.ingestor.venues.okx import Okx
from tests.ingestor.frames import agg_trade, force_order

VENUE = BinanceUsdm(load_instruments("binance-usdm"))
UNIVERSE = ["BTC", "ETH", "SOL", "BNB", "XRP", "ADA", "AVAX", "TRX", "TON", "DOT", "SUI", "LTC", "BCH", "APT", "HBAR", "XLM", "ATOM", "ETC", "KAS", "ALGO", "SEI", "INJ", "TIA", "NEAR", "ICP", "ARB", "OP", "POL", "MNT", "IMX", "STX", "STRK", "LINK", "UNI", "AAVE", "ONDO", "MKR", "ENA", "JUP", "LDO", "CRV", "PENDLE", "DOGE", "SHIB", "PEPE", "BONK", "WIF", "FLOKI", "TRUMP", "RENDER", "GRT", "FET", "GPU", "TAO", "VIRTUAL", "AI16Z", "WLD", "AKT", "ARKM", "IO", "AIOZ", "THETA", "GRASS", "AIXBT", "COOKIE"]


@pytest.mark.parametrize("venue", ["binance-usdm", "bybit", "okx"])
def test_snapshot_has_a_usdt_perp_for_every_asset_of_the_universe(venue: str) -> None:
    perps = {i.base for i in load_instruments(venue).values() if i.instrument == f"{i.base}-USDT-PERP"}
    assert set(UNIVERSE) <= perps


def test_snapshot_conventions_and_inverse_math() -> None:
    binance, bybit, okx = (load_instruments(v) for v in ("binance-usdm", "bybit", "okx"))
    assert binance["1000PEPEUSDT"].base == "PEPE" and binance["1000PEPEUSDT"].contract_size == 1000
    assert bybit["SHIB1000USDT"].instrument == "SHIB-USDT-PERP"
    assert okx["BTC-USDT-SWAP"].contract_size == 0.01
    inverse = okx["BTC-USD-SWAP"]
    assert inverse.kind == "inverse" and inverse.instrument == "BTC-USD-PERP"
    assert inverse.notional_usd(3, 100_000.0) == 300.0
    assert inverse.base_size(3, 100_000.0) == pytest.approx(0.003)


def test_split_thousands() -> None:
    assert split_thousands("1000PEPE") == ("PEPE", 1000.0)
    assert split_thousands("SHIB1000") == ("SHIB", 1000.0)
    assert split_thousands("1000000MOG") == ("MOG", 1_000_000.0)
    assert split_thousands("BTC") == ("BTC", 1.0)


def test_rest_parsers_on_saved_response_shapes() -> None:
    binance = BinanceUsdm.parse_rest_instruments({"symbols": [
        {"symbol": "BTCUSDT", "contractType": "PERPETUAL", "status": "TRADING", "baseAsset": "BTC",
         "quoteAsset": "USDT", "deliveryDate": 4133404800000},
        {"symbol": "1000PEPEUSDT", "contractType": "PERPETUAL", "status": "TRADING", "baseAsset": "1000PEPE",
         "quoteAsset": "USDT"},
        {"symbol": "BTCUSDT_250328", "contractType": "CURRENT_QUARTER", "status": "TRADING", "baseAsset": "BTC",
         "quoteAsset": "USDT", "deliveryDate": 1743148800000},
        {"symbol": "OLDUSDT", "contractType": "PERPETUAL", "status": "SETTLING", "baseAsset": "OLD",
         "quoteAsset": "USDT"},
    ]})
    assert [(i.symbol, i.instrument, i.contract_size, i.price_scale) for i in binance] == [
        ("BTCUSDT", "BTC-USDT-PERP", 1.0, 1.0), ("1000PEPEUSDT", "PEPE-USDT-PERP", 1000.0, 1000.0),
        ("BTCUSDT_250328", "BTC-USDT-250328", 1.0, 1.0)]
    bybit = Bybit.parse_rest_instruments({"retCode": 0, "result": {"category": "linear", "list": [
        {"symbol": "SHIB1000USDT", "contractType": "LinearPerpetual", "status": "Trading", "baseCoin": "SHIB1000",
         "quoteCoin": "USDT", "deliveryTime": "0"}]}})
    assert [(i.instrument, i.contract_size) for i in bybit] == [("SHIB-USDT-PERP", 1000.0)]
    okx = Okx.parse_rest_instruments({"code": "0", "data": [
        {"instId": "BTC-USD-SWAP", "instType": "SWAP", "uly": "BTC-USD", "ctVal": "100", "ctType": "inverse",
         "state": "live", "expTime": ""},
        {"instId": "PEPE-USDT-SWAP", "instType": "SWAP", "uly": "PEPE-USDT", "ctVal": "10000000",
         "ctType": "linear", "state": "live", "expTime": ""}]})
    assert [(i.instrument, i.kind, i.contract_size) for i in okx] == [
        ("BTC-USD-PERP", "inverse", 100.0), ("PEPE-USDT-PERP", "linear", 10_000_000.0)]


def test_refresh_is_guarded_and_merges_over_the_snapshot() -> None:
    def failing(url: str, timeout: float) -> dict[str, object]:
        raise OSError("no network")

    assert refresh_from_rest(Okx, fetch=failing) == 0
    assert "BTC-USDT-SWAP" in load_instruments("okx")
    fetched: list[str] = []

    def live(url: str, timeout: float) -> dict[str, object]:
        fetched.append(url)
        return {"code": "0", "data": [{"instId": "NEW-USDT-SWAP", "instType": "SWAP", "uly": "NEW-USDT",
                                       "ctVal": "10", "ctType": "linear", "state": "live", "expTime": ""}]}

    try:
        assert refresh_from_rest(Okx, fetch=live) == 2          # one row from each endpoint (SWAP, FUTURES)
        assert fetched == list(Okx.rest_instrument_urls)
        table = load_instruments("okx")
        assert table["NEW-USDT-SWAP"].contract_size == 10.0 and "BTC-USDT-SWAP" in table
    finally:
        instruments._refreshed.pop("okx", None)


def test_deduper_window_and_capacity() -> None:
    dedupe = Deduper(capacity=3, window_ms=1000)
    assert not dedupe.is_duplicate("a", 0)
    assert dedupe.is_duplicate("a", 10)
    for key in "bcd":
        assert not dedupe.is_duplicate(key, 20)
    assert not dedupe.is_duplicate("a", 30)          # evicted by capacity
    assert not dedupe.is_duplicate("z", 5000)        # expires everything older than 4000
    assert len(dedupe) == 1


def test_the_pipeline_uses_the_configured_deduper() -> None:
    # An empty Deduper is falsy (``__len__``): ``dedupe or Deduper()`` replaced it by the default,
    # so CRYPTOPULSE_DEDUPE_CAPACITY and _WINDOW_SECONDS were ignored (500k ids, ~150 MiB, always).
    settings = load(IngestorSettings, {}, dedupe_capacity=7, dedupe_window_seconds=2.0)
    dedupe = build_pipeline(settings, {VENUE.id: VENUE}).dedupe
    assert (dedupe.capacity, dedupe.window_ms) == (7, 2000)


def _trade(trade_id: int, ts: int = 1_737_975_600_000, recv: int | None = None, price: float = 100.0,
           side: str = "buy", instrument: str = "BTC-USDT-PERP") -> Trade:
    return Trade(exchange="binance-usdm", symbol="BTCUSDT", instrument=instrument, base="BTC", quote="USDT",
                 market="perp", side=side, price=price, size=0.5, notional_usd=price * 0.5,  # type: ignore[arg-type]
                 trade_id=str(trade_id), ts=ts, ts_recv=ts if recv is None else recv)


def test_gap_detector() -> None:
    gaps = GapDetector()
    assert gaps.observe(_trade(10)) is None
    assert gaps.observe(_trade(11)) is None
    gap = gaps.observe(_trade(15))
    assert gap is not None and (gap.after_trade_id, gap.before_trade_id, gap.missing) == ("11", "15", 3)
    assert gaps.observe(_trade(13)) is None           # late: not a gap, high-water mark stays
    assert gaps.observe(_trade(16)) is None
    assert gaps.observe(_trade(1, instrument="ETH-USDT-PERP")) is None


def test_bars_are_exact_and_close_on_minute_change_and_age() -> None:
    rng = random.Random(7)
    builder = BarBuilder(max_age_ms=250)
    trades = []
    ts = 1_737_975_599_000
    for trade_id in range(1, 400):
        ts += rng.randint(0, 120)
        trades.append(_trade(trade_id, ts=ts, price=rng.uniform(90, 110), side=rng.choice(["buy", "sell"])))
    bars = [bar for trade in trades if (bar := builder.add(trade)) is not None] + builder.close_all()
    assert sum(b.count for b in bars) == len(trades)
    assert sum(b.notional_usd for b in bars) == pytest.approx(sum(t.notional_usd for t in trades))
    assert sum(b.buy_notional_usd for b in bars) == pytest.approx(
        sum(t.notional_usd for t in trades if t.side == "buy"))
    for bar in bars:
        assert bar.ts_first - bar.ts_first % 60_000 == bar.minute == bar.ts_last - bar.ts_last % 60_000
        assert bar.ts_recv - bar.ts_first < 250 + 120
        assert bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high
        assert bar.id == f"binance-usdm:BTC-USDT-PERP:{bar.first_trade_id}:{bar.last_trade_id}:{bar.count}"
    assert len({b.id for b in bars}) == len(bars)
    assert builder.due(10**15) == []


def test_bars_due_on_the_receipt_clock() -> None:
    builder = BarBuilder(max_age_ms=250)
    builder.add(_trade(1, recv=1000))
    assert builder.due(1249) == []
    [bar] = builder.due(1250)
    assert isinstance(bar, TradeBar) and bar.count == 1


def test_pipeline_outcomes_dedupe_and_record_keys() -> None:
    pipeline = Pipeline({VENUE.id: VENUE}, max_frame_bytes=2000)
    frames = [agg_trade(agg_id=1), agg_trade(agg_id=1), agg_trade(agg_id=2), agg_trade(agg_id=5),
              force_order(), force_order(), '{"result":null,"id":1}', "garbage", "x" * 3000]
    records = [r for f in frames for r in pipeline.process(RawFrame(VENUE.id, f, 1_737_975_601_000))]
    records += pipeline.close()
    by_topic: dict[str, list[tuple[bytes, dict[str, object]]]] = {}
    for topic, key, value in records:
        by_topic.setdefault(topic, []).append((key, orjson.loads(value)))
    assert pipeline.stats["ok"] == 6 and pipeline.stats["ignored"] == 1 and pipeline.stats["deadletter"] == 2
    assert pipeline.stats["duplicates"] == 2
    assert [v["trade_id"] for _, v in by_topic[topics.TRADES.name]] == ["1", "2", "5"]
    assert {k for k, _ in by_topic[topics.TRADES.name]} == {b"BTC-USDT-PERP"}
    assert len(by_topic[topics.LIQUIDATIONS.name]) == 1
    [(gap_key, gap)] = by_topic[topics.TRADE_GAPS.name]
    assert gap_key == b"binance-usdm:BTC-USDT-PERP" and gap["missing"] == 2
    assert {k for k, _ in by_topic[topics.TRADE_BARS.name]} == {b"BTC"}
    assert sum(v["count"] for _, v in by_topic[topics.TRADE_BARS.name]) == 3  # type: ignore[misc]
    reasons = [v["reason"] for _, v in by_topic[topics.DEADLETTER.name]]
    assert reasons[0].startswith("invalid_json") and reasons[1].startswith("oversized")  # type: ignore[union-attr]


def test_pipeline_tallies_what_happened_and_the_observer_turns_it_into_metrics() -> None:
    """The pipeline only counts (no metric, no clock); the shell's observer updates Prometheus."""
    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    pipeline = Pipeline({VENUE.id: VENUE}, max_frame_bytes=2000)
    for frame in (agg_trade(agg_id=1), agg_trade(agg_id=1), agg_trade(agg_id=4), force_order(), "garbage"):
        pipeline.process(RawFrame(VENUE.id, frame, 1_737_975_601_000))
    before = {name: sample(name, venue=VENUE.id) for name in (
        "cryptopulse_ingestor_duplicates_total", "cryptopulse_ingestor_trade_gaps_total",
        "cryptopulse_ingestor_missing_trades_total", "cryptopulse_ingestor_event_lag_seconds_count")}
    ok = sample("cryptopulse_ingestor_frames_total", venue=VENUE.id, outcome="ok")
    bad = sample("cryptopulse_ingestor_deadletters_total", venue=VENUE.id, reason="invalid_json")
    tally = pipeline.take_tally()
    counts = tally.venues[VENUE.id]
    assert counts.frames == {"ok": 4, "ignored": 0, "deadletter": 1}
    assert (counts.trades, counts.liquidations, counts.duplicates, counts.gaps, counts.missing) == (2, 1, 1, 1, 2)
    assert len(counts.lags) == 3 and tally.events == 4 and tally.deadletters == {(VENUE.id, "invalid_json"): 1}
    assert pipeline.take_tally().venues == {}   # taken once
    assert sample("cryptopulse_ingestor_frames_total", venue=VENUE.id, outcome="ok") == ok   # nothing yet

    TallyObserver(wall=lambda: 1234.0).apply(tally)
    assert sample("cryptopulse_ingestor_frames_total", venue=VENUE.id, outcome="ok") == ok + 4
    assert sample("cryptopulse_ingestor_deadletters_total", venue=VENUE.id, reason="invalid_json") == bad + 1
    after = {name: sample(name, venue=VENUE.id) for name in before}
    assert {name: after[name] - before[name] for name in before} == {
        "cryptopulse_ingestor_duplicates_total": 1, "cryptopulse_ingestor_trade_gaps_total": 1,
        "cryptopulse_ingestor_missing_trades_total": 2, "cryptopulse_ingestor_event_lag_seconds_count": 3}
    assert sample("cryptopulse_ingestor_last_event_timestamp_seconds", venue=VENUE.id) == 1234.0


def test_pipeline_keeps_the_raw_frame_on_request_and_rejects_unknown_venues() -> None:
    pipeline = Pipeline({VENUE.id: VENUE}, keep_raw=True)
    frame = agg_trade()
    [(_, _, value)] = [r for r in pipeline.process(RawFrame(VENUE.id, frame, 1)) if r[0] == topics.TRADES.name]
    assert orjson.loads(value)["raw"] == frame
    [(topic, key, letter)] = pipeline.process(RawFrame("nowhere", frame, 1))
    assert topic == topics.DEADLETTER.name and key == b"unknown"
    assert orjson.loads(letter)["reason"].startswith("adapter_error")


def test_pipeline_dead_letters_overflowing_arithmetic() -> None:
    pipeline = Pipeline({VENUE.id: VENUE})
    [(topic, _, letter)] = pipeline.process(RawFrame(VENUE.id, agg_trade(price="1e300", qty="1e300"), 1))
    assert topic == topics.DEADLETTER.name and orjson.loads(letter)["reason"].startswith("bad_value")


def test_recording_roundtrip_bad_lines_and_pacing(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl.zst"
    writer = RecordingWriter(path)
    for i in range(3):
        writer.write(RawFrame(VENUE.id, agg_trade(agg_id=i), 1_000 + 1_000 * i))
    writer.close()
    assert [f.ts_recv for f in read_recording(path) if isinstance(f, RawFrame)] == [1000, 2000, 3000]
    plain = tmp_path / "rec.jsonl"
    plain.write_text('{"venue":"binance-usdm","ts_recv":5,"frame":"{}"}\nnot a frame\n{"venue":1}\n\n')
    items = list(read_recording(plain))
    assert isinstance(items[0], RawFrame)
    assert [i.reason.split(":")[0] for i in items[1:] if isinstance(i, Unreadable)] == ["invalid_recording"] * 2
    assert parse_speed("max") is None and parse_speed("10") == 10.0
    with pytest.raises(SourceError):
        parse_speed("-1")

    async def drain(speed: float | None) -> float:
        started = time.monotonic()
        assert len([f async for f in paced(read_recording(path), speed)]) == 3
        return time.monotonic() - started

    assert asyncio.run(drain(10.0)) >= 0.19        # 2 s of recorded time at 10x
