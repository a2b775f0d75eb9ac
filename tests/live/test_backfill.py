"""Backfill: the venues' kline formats and paging against fake REST servers, faults (429/418
Retry-After, 5xx, venue error codes, malformed JSON), and a run on the real embedded broker whose
history equals a recomputation from the fakes' price function, resumes, and stops at live minutes."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest

from services.common import topics
from services.common.compacted import publish, read_table
from services.common.http import HttpError, MalformedResponse, RetryPolicy, Throttle
from services.common.settings import KafkaSettings, load
from services.ingestor.backfill import plan
from services.ingestor.backfill.client import VenueClient
from services.ingestor.backfill.klines import APIS, MINUTE_MS, Kline, VenueRefusal
from services.ingestor.backfill.run import backfill, mark_live
from services.ingestor.backfill.settings import BackfillSettings
from services.ingestor.instruments import load_instruments
from services.ingestor.venues.base import Instrument
from services.reference.service import load_file, read_snapshot
from tests.live.fake_klines import FakeKlines, ohlc

NOW = 1_780_317_296_000           # 2026-06-01 12:34:56 UTC
VENUES = {"binance": "binance-usdm", "bybit": "bybit", "okx": "okx"}
FAST = RetryPolicy(attempts=4, backoff_initial=0.05, timeout=5)


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, FakeKlines]]:
    servers = {}
    for name, venue in VENUES.items():
        symbols = {s: inst.contract_size for s, inst in load_instruments(venue).items()}
        servers[venue] = FakeKlines(name, symbols, NOW).start()
    try:
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def client(fake: FakeKlines, venue: str, policy: RetryPolicy = FAST) -> VenueClient:
    return VenueClient(APIS[venue], fake.url, Throttle(1000, 1), policy, 2, ThreadPoolExecutor(2))


def inst(venue: str, symbol: str) -> Instrument:
    return load_instruments(venue)[symbol]


def test_ranges_and_bars() -> None:
    r = plan.plan_ranges(NOW, minutes=2880, hours=720, days=260)
    assert r.cutoff == NOW - NOW % MINUTE_MS and r.minutes == (r.cutoff - 2880 * MINUTE_MS, r.cutoff)
    first = r.minutes[0]
    assert r.days[1] - plan.DAY_MS <= first < r.days[1] and r.days[1] - r.days[0] == 260 * plan.DAY_MS
    assert r.hours[1] - plan.HOUR_MS <= first < r.hours[1]
    assert plan.plan_ranges(NOW, live_since=NOW - 3_600_000 + 5).cutoff == NOW - 3_600_000 - (NOW - 3_600_000) % MINUTE_MS
    pepe = inst("binance-usdm", "1000PEPEUSDT")
    k = Kline(60_000, 0.012, 0.013, 0.011, 0.0125, 2_000.0, 25.0, 7, 10.0)
    b = plan.bar(pepe, k)
    assert b is not None and b["close"] == pytest.approx(0.0125 / 1000) and b["volume"] == 2_000_000.0
    assert b["notional_usd"] == 25.0 and b["count"] == 7 and b["ts_last"] == 119_999 and b["base"] == "PEPE"
    assert b["id"] == plan.bar(pepe, k)["id"]               # type: ignore[index]  (deterministic id)
    btc = inst("okx", "BTC-USDT-SWAP")
    assert plan.bar(btc, Kline(0, 1, 1, 1, 1, 300.0, 3.0))["volume"] == pytest.approx(3.0)  # type: ignore[index]
    assert plan.bar(btc, Kline(0, 1, 1, 1, 1, 0.0, 0.0)) is None


def test_merged_minutes_give_the_processor_the_same_figures() -> None:
    """The processor's own batch oracle on the venues' bars and on the merged bars agrees."""
    from services.common.events import TradeBar
    from services.processor.reference import bundled_universe
    from tests import oracle
    from tests.processor.helpers import differences

    minute0 = NOW - NOW % MINUTE_MS - 30 * MINUTE_MS
    per_venue = []
    for venue, symbol in (("binance-usdm", "BTCUSDT"), ("bybit", "BTCUSDT"), ("okx", "BTC-USDT-SWAP"),
                          ("binance-usdm", "1000PEPEUSDT"), ("okx", "PEPE-USDT-SWAP"), ("bybit", "FETUSDT")):
        instrument = inst(venue, symbol)
        for t in range(minute0, minute0 + 30 * MINUTE_MS, MINUTE_MS):
            if (t // MINUTE_MS) % 7 == hash(venue) % 7:
                continue                                        # some venue-minutes without trades
            o, h, low, c = ohlc(symbol, t, MINUTE_MS)
            made = plan.bar(instrument, Kline(t, o, h, low, c, 1000.0 / c, 1000.0, 3, 400.0))
            assert made is not None
            per_venue.append(made)
    merged = plan.merge_minutes(per_venue)
    assert len(merged) == len({(b["base"], b["minute"]) for b in per_venue}) < len(per_venue)
    universe = bundled_universe()
    end = minute0 + 30 * MINUTE_MS
    expected = oracle.compute([TradeBar.from_dict(b) for b in per_venue], [], universe, end)
    got = oracle.compute([TradeBar.from_dict(b) for b in merged], [], universe, end)
    for kind in ("asset-stats", "sector-caps", "candles"):
        assert differences(got[kind], expected[kind]) == [], kind
    assert expected["asset-stats"]["BTC"]["volume_24h_usd"] > 0


def test_cap_history_is_close_times_current_supply() -> None:
    assets = {"A": {"circulating_supply": 10.0, "sectors": ["ai"]}, "B": {"circulating_supply": 2.0, "sectors": []},
              "USDT": {"circulating_supply": 100.0, "sectors": ["stablecoin"], "stablecoin": True},
              "Z": {"circulating_supply": 5.0, "sectors": ["ai"]}}
    prices = {"A": {0: (1.0, 2.0, 0.5, 1.5), 86_400_000: (1.5, 1.5, 1.0, 1.0)}, "B": {86_400_000: (4.0, 5.0, 3.0, 4.5)}}
    candles = {(c["series"], c["open_time"]): c for c in plan.history_candles("1d", prices, assets)}
    assert candles[("total", 0)]["close"] == 1.5 * 10 + 100.0             # B not listed yet, Z never
    assert candles[("total", 86_400_000)]["close"] == 1.0 * 10 + 4.5 * 2 + 100.0
    assert candles[("ai", 0)]["high"] == 20.0 and candles[("A", 0)]["close"] == 1.5
    assert all(c["closed"] and c["ts"] == c["open_time"] + 86_399_999 for c in candles.values())


def test_parsers_refuse_bad_answers() -> None:
    with pytest.raises(VenueRefusal, match="-1121") as exc:
        APIS["binance-usdm"].parse("u", {"code": -1121, "msg": "Invalid symbol."})
    assert not exc.value.retryable
    with pytest.raises(VenueRefusal) as exc:
        APIS["bybit"].parse("u", {"retCode": 10006, "retMsg": "Too many visits!", "result": {}})
    assert exc.value.retryable
    with pytest.raises(VenueRefusal) as exc:
        APIS["okx"].parse("u", {"code": "50011", "msg": "Too Many Requests", "data": []})
    assert exc.value.retryable
    with pytest.raises(MalformedResponse, match="OHLC"):
        APIS["binance-usdm"].parse("u", [[0, "1", "0.5", "0.9", "1", "1", 59_999, "1", 1, "0", "0", "0"]])
    with pytest.raises(MalformedResponse, match="not a number"):
        APIS["okx"].parse("u", {"code": "0", "data": [["0", "x", "1", "1", "1", "1", "1", "1", "1"]]})
    forming = APIS["okx"].parse("u", {"code": "0", "data": [["60000", "1", "1", "1", "1", "1", "1", "1", "0"],
                                                            ["0", "1", "1", "1", "1", "1", "1", "1", "1"]]})
    assert [k.open_time for k in forming] == [0]


@pytest.mark.parametrize(("venue", "symbol", "pages"), [("binance-usdm", "BTCUSDT", 2), ("bybit", "ETHUSDT", 3),
                                                        ("okx", "SOL-USDT-SWAP", 29)])
def test_paging(fakes: dict[str, FakeKlines], venue: str, symbol: str, pages: int) -> None:
    fake = fakes[venue]
    before = len(fake.calls(fake.path))
    start = NOW - NOW % MINUTE_MS - 2880 * MINUTE_MS + MINUTE_MS * 3
    got = asyncio.run(client(fake, venue).klines(symbol, "1m", start, NOW - NOW % MINUTE_MS + MINUTE_MS, NOW))
    assert [k.open_time for k in got] == list(range(start, NOW - NOW % MINUTE_MS, MINUTE_MS))  # forming one dropped
    assert len(fake.calls(fake.path)) - before == pages
    o, h, low, c = ohlc(symbol, got[-1].open_time, MINUTE_MS)
    assert (got[-1].open, got[-1].high, got[-1].low, got[-1].close) == pytest.approx((o, h, low, c))


def test_rate_limits_and_faults(fakes: dict[str, FakeKlines]) -> None:
    fake = fakes["binance-usdm"]
    c = client(fake, "binance-usdm")
    fake.fault(fake.path, 429, b'{"code":-1003,"msg":"Too many requests"}', {"Retry-After": "1"})
    fake.fault(fake.path, 418, b'{"code":-1003,"msg":"banned"}', {"Retry-After": "1"})
    fake.fault(fake.path, 503, b"unavailable")
    started = time.monotonic()
    got = asyncio.run(c.klines("BTCUSDT", "1h", NOW - 10 * 3_600_000, NOW - 3_600_000, NOW))
    assert len(got) == 9 and time.monotonic() - started >= 2.0      # both Retry-After waits honoured
    assert c.throttle.paused_until > 0
    fake.fault(fake.path, 200, b'[[1780300000000, "1", ')
    with pytest.raises(MalformedResponse, match="malformed JSON"):
        asyncio.run(c.klines("BTCUSDT", "1h", NOW - 10 * 3_600_000, NOW, NOW))
    fake.fault(fake.path, 400, b'{"code":-1121,"msg":"Invalid symbol."}')
    with pytest.raises(HttpError, match="HTTP 400"):
        asyncio.run(c.klines("NOPEUSDT", "1h", NOW - 10 * 3_600_000, NOW, NOW))
    bybit = fakes["bybit"]
    bybit.fault(bybit.path, 200, b'{"retCode":10006,"retMsg":"Too many visits!","result":{},"time":0}')
    assert len(asyncio.run(client(bybit, "bybit").klines("BTCUSDT", "1d", NOW - 5 * 86_400_000, NOW, NOW))) == 4


def kafka_of(broker) -> KafkaSettings:
    return load(KafkaSettings, broker_port=broker.port)


def settings_for(fakes: dict[str, FakeKlines], **extra: object) -> BackfillSettings:
    values: dict[str, object] = {
        "backfill_binance_url": fakes["binance-usdm"].url, "backfill_bybit_url": fakes["bybit"].url,
        "backfill_okx_url": fakes["okx"].url, "backfill_minutes": 90, "backfill_hours": 48, "backfill_days": 210,
        "backfill_chunk_minutes": 60, "backfill_concurrency": 4, "backfill_binance_weight_per_minute": 1e6,
        "backfill_bybit_requests_per_second": 1e4, "backfill_okx_requests_per_second": 1e4}
    return load(BackfillSettings, environ={}, **{**values, **extra})


def expected_total_close(open_time: int, step: int) -> float:
    """Σ close × supply recomputed from the fakes' prices (first venue that trades an asset)."""
    total = 0.0
    for record in read_snapshot().records:
        for venue in ("binance-usdm", "bybit", "okx"):
            found = [i for i in load_instruments(venue).values() if i.base == record["asset"] and i.listed
                     and i.market == "perp" and i.kind == "linear" and i.quote in ("USDT", "USDC", "USD")]
            if found:
                total += ohlc(found[0].symbol, open_time, step)[3] / found[0].price_scale * record["circulating_supply"]
                break
        else:
            if record["stablecoin"]:
                total += record["circulating_supply"]
    return total


def test_backfill_publishes_resumes_and_stops_at_live(broker, fakes: dict[str, FakeKlines]) -> None:
    kafka = kafka_of(broker)
    settings = settings_for(fakes)

    async def scenario() -> None:
        await load_file(kafka)
        out = io.StringIO()
        summary = await backfill(kafka, settings, now=NOW, out=out)
        assert not summary.failed and "backfill 1m bars" in out.getvalue()
        history = await read_table(kafka, topics.CANDLE_HISTORY)
        assert history["total:1d"]["open_time"] == summary.ranges.days[1] - plan.DAY_MS
        assert history["total:1d"]["close"] == pytest.approx(expected_total_close(history["total:1d"]["open_time"],
                                                                                   plan.DAY_MS), rel=1e-12)
        assert history["total:1h"]["open_time"] == summary.ranges.hours[1] - plan.HOUR_MS
        assert {"BTC:1d", "ai:1d", "l1:1h", "PEPE:1h"} <= set(history)
        bars = await read_table(kafka, topics.TRADE_BARS)     # key = asset: the last bar per asset
        traded = {i.base for v in VENUES.values() for i in load_instruments(v).values()
                  if i.listed and i.market == "perp" and i.kind == "linear"}
        assets = {r["asset"] for r in read_snapshot().records} & traded
        assert summary.bars == len(assets) * 90                # one bar per asset and minute
        assert max(b["minute"] for b in bars.values()) == summary.ranges.cutoff - MINUTE_MS
        marks = await read_table(kafka, topics.REFERENCE_STATUS, prefix="backfill")
        assert marks["backfill:1m"]["through"] == summary.ranges.cutoff

        again = await backfill(kafka, settings, now=NOW, out=io.StringIO())
        assert again.bars == 0 and again.history_candles == 0 and again.requests == 0
        assert again.skipped == ["1d history", "1h history", "1m bars"]

        since = await mark_live(kafka, summary.ranges.cutoff)
        assert await mark_live(kafka, summary.ranges.cutoff + 10 * MINUTE_MS) == since
        later = await backfill(kafka, settings, now=NOW + 30 * MINUTE_MS, out=io.StringIO())
        assert later.ranges.cutoff == since and later.bars == 0       # live minutes are never backfilled

        await publish(kafka, [(topics.REFERENCE_STATUS, "backfill:1m",
                               {"kind": "backfill:1m", "through": since - 30 * MINUTE_MS, "ts": 0})])
        resumed = await backfill(kafka, settings, now=NOW, out=io.StringIO())
        assert resumed.bars == len(assets) * 30 and resumed.skipped == ["1d history", "1h history"]

    asyncio.run(scenario())


def test_processor_has_daily_indicators_from_the_backfill(broker, fakes: dict[str, FakeKlines], services) -> None:  # type: ignore[no-untyped-def]
    """SMA 200 and RSI on total:1d (and the sector caps) are defined before any live trade."""
    from services.common.broker import free_port
    from tests.processor.helpers import read_latest

    kafka = kafka_of(broker)

    async def prepare() -> None:
        await load_file(kafka)
        summary = await backfill(kafka, settings_for(fakes, backfill_minutes=60), now=NOW, out=io.StringIO())
        assert not summary.failed

    asyncio.run(prepare())
    worker = services("process", env={"CRYPTOPULSE_BROKER_PORT": str(broker.port), "CRYPTOPULSE_KAFKA_BOOTSTRAP": "",
                                      "CRYPTOPULSE_PROCESSOR_METRICS_PORT": str(free_port()),
                                      "CRYPTOPULSE_PROCESSOR_EMIT_INTERVAL": "0.2"})
    deadline = time.monotonic() + 120
    indicators: dict = {}
    while time.monotonic() < deadline:
        indicators = read_latest(broker.bootstrap, topics.INDICATORS.name).get("total:1d", {})
        if indicators.get("sma200") is not None and indicators.get("rsi14") is not None:
            break
        assert worker.process.poll() is None, worker.output()[-3000:]
        time.sleep(1)
    assert indicators.get("sma200") is not None and indicators.get("rsi14") is not None, worker.output()[-3000:]
    sectors = read_latest(broker.bootstrap, topics.SECTOR_CAPS.name)
    assert sectors["total"]["cap_usd"] > 0 and sectors["ai"]["members"]


def test_an_interrupted_backfill_resumes_where_it_stopped(broker, fakes: dict[str, FakeKlines]) -> None:
    """Cancelled after its first 1-minute chunk is published, a second run fetches only what is
    missing; every minute of every instrument ends up on the topic (a half-sent chunk repeats
    bars with the same ids, which the processor counts once)."""

    kafka = kafka_of(broker)
    settings = settings_for(fakes, backfill_chunk_minutes=10, backfill_concurrency=1)

    async def bar_ids() -> list[str]:
        from aiokafka import TopicPartition

        from services.common.kafka import make_consumer

        consumer = make_consumer(kafka, group_id=None)
        await consumer.start()
        try:
            parts = [TopicPartition(topics.TRADE_BARS.name, p) for p in range(topics.TRADE_BARS.partitions)]
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            ids: list[str] = []
            while True:
                batches = await consumer.getmany(*parts, timeout_ms=1000, max_records=20_000)
                if not batches:
                    return ids
                ids += [orjson.loads(r.value)["id"] for batch in batches.values() for r in batch]
        finally:
            await consumer.stop()

    async def scenario() -> None:
        await load_file(kafka)
        first = asyncio.create_task(backfill(kafka, settings, now=NOW, out=io.StringIO()))
        while not (await read_table(kafka, topics.REFERENCE_STATUS, prefix="backfill:1m", timeout=5)):
            assert not first.done(), first
            await asyncio.sleep(0.05)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        through = (await read_table(kafka, topics.REFERENCE_STATUS, prefix="backfill:1m"))["backfill:1m"]["through"]
        calls = {v: len(f.calls(f.path)) for v, f in fakes.items()}
        second = await backfill(kafka, settings, now=NOW, out=io.StringIO())
        start = second.ranges.minutes[0]
        assert start < through < second.ranges.cutoff
        per_minute = second.bars * MINUTE_MS // (second.ranges.cutoff - through)
        assert second.bars == per_minute * (second.ranges.cutoff - through) // MINUTE_MS
        assert second.skipped == ["1d history", "1h history"]
        okx = fakes["okx"].calls(fakes["okx"].path)[calls["okx"]:]
        assert okx and all(int(q["before"]) >= through - 1 for q in okx)     # nothing before the checkpoint
        ids = await bar_ids()
        assert len(set(ids)) == per_minute * 90

    asyncio.run(scenario())


def test_an_unreachable_venue_is_skipped_quickly(broker, fakes: dict[str, FakeKlines]) -> None:
    """Bybit does not answer at all: after one fully retried request it is skipped for the rest of
    the run (each of its instruments reported failed), the other venues are backfilled."""
    from services.common.broker import free_port

    kafka = kafka_of(broker)
    settings = settings_for(fakes, backfill_bybit_url=f"http://127.0.0.1:{free_port()}", backfill_attempts=2)

    async def scenario() -> None:
        await load_file(kafka)
        started = time.monotonic()
        summary = await backfill(kafka, settings, now=NOW, out=io.StringIO())
        bybit = [f for f in summary.failed if f.startswith("bybit:")]
        assert bybit and all(f.startswith("bybit:") for f in summary.failed)
        assert summary.bars > 0 and time.monotonic() - started < 30
        assert summary.unreachable == ["bybit"] and "unreachable: bybit" in summary.line()

    asyncio.run(scenario())
