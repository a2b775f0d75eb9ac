"""Reference refresh: pure rules, the HTTP client's fault handling against a fake CoinGecko, and
``assets load``/``refresh`` on the real embedded broker (records, status, failure keeps data)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import orjson
import pytest

from services.common import topics
from services.common.compacted import read_table
from services.common.http import HttpError, MalformedResponse, RetryPolicy, get_json, retry_after_seconds
from services.common.settings import KafkaSettings, load
from services.reference import service
from services.reference.coingecko import CoinGecko
from services.reference.mapping import MappingError, load_map, parse_map
from services.reference.market import MarketEntry
from services.reference.refresh import plan_refresh
from services.reference.settings import ReferenceSettings
from tests.live.fake_coingecko import Coin, FakeCoinGecko

FAST = RetryPolicy(attempts=3, backoff_initial=0.01, timeout=5)
CMAP = parse_map({"stablecoin_sector": "stablecoin", "sectors": {
    "ai": {"categories": ["artificial-intelligence"]}, "l1": ["layer-1"], "stablecoin": ["stablecoins"]}})


def coins() -> list[Coin]:
    return [
        Coin("bitcoin", "btc", "Bitcoin", 90_000.0, 19_950_000.0, {"layer-1"}),
        Coin("ethereum", "eth", "Ethereum", 3_000.0, 120_700_000.0, {"layer-1"}),
        Coin("tether", "usdt", "Tether", 1.0, 180e9, {"stablecoins"}),
        Coin("render-token", "render", "Render", 2.0, 520e6, {"artificial-intelligence"}),
        Coin("fake-btc", "btc", "Wrapped fake BTC", 90_000.0, 10.0, {"artificial-intelligence"}),
        Coin("nosupply", "nos", "No supply", 1.0, None, set()),
    ]


@pytest.fixture
def fake() -> Iterator[FakeCoinGecko]:
    server = FakeCoinGecko(coins()).start()
    try:
        yield server
    finally:
        server.stop()


def entry(symbol: str, cap: float, pid: str = "", supply: float = 1.0) -> MarketEntry:
    return MarketEntry(symbol, symbol.title(), supply, cap, pid or symbol.lower())


def test_plan_rules() -> None:
    current = {"FET": {"asset": "FET", "name": "Fet", "circulating_supply": 1.0, "sectors": ["ai"], "stablecoin": False},
               "OLD": {"asset": "OLD", "name": "Old", "circulating_supply": 5.0, "sectors": ["l1"], "stablecoin": False},
               "BTC": {"asset": "BTC", "name": "Btc", "circulating_supply": 1.0, "sectors": ["l1"], "stablecoin": False}}
    top = [entry("BTC", 100.0), entry("FET", 5.0), entry("USDT", 50.0, supply=50.0)]
    members = {"layer-1": [entry("BTC", 100.0), entry("BTC", 1.0, "impostor")],
               "artificial-intelligence": [entry("BTC", 1.0, "impostor")], "stablecoins": [entry("USDT", 50.0, supply=50.0)]}
    plan = plan_refresh(current, top, members, {"artificial-intelligence"}, CMAP, "T", "fake")
    by = {r["asset"]: r for r in plan.changed}
    assert "BTC" not in by and plan.unchanged == 2          # the impostor ticker added no sector
    assert plan.universe["FET"]["sectors"] == ["ai"]        # truncated category: previous sector kept
    assert by["USDT"]["stablecoin"] is True and by["USDT"]["sectors"] == ["stablecoin"]
    assert plan.kept == 1 and plan.universe["OLD"]["circulating_supply"] == 5.0
    assert plan.added == 1 and plan.sector_counts() == {"ai": 1, "l1": 2, "stablecoin": 1}
    plan = plan_refresh(current, top, members, set(), CMAP, "T", "fake")
    assert plan.universe["FET"]["sectors"] == []            # a complete answer is the truth


def test_map_errors(tmp_path) -> None:
    assert "layer-1" in load_map().categories()
    with pytest.raises(MappingError, match="TOTAL"):
        parse_map({"sectors": {"TOTAL": ["x"]}})
    with pytest.raises(MappingError, match="1..16"):
        parse_map({"sectors": {"ai": []}})
    bad = tmp_path / "map.json"
    bad.write_text("{nope")
    with pytest.raises(MappingError, match="not JSON"):
        load_map(bad)


def test_retry_after_forms() -> None:
    assert retry_after_seconds({"Retry-After": "7"}) == 7.0
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, now=1445412470.0) == 10.0
    assert retry_after_seconds({"X": "1"}) is None and retry_after_seconds({"Retry-After": "soon"}) is None


def test_http_faults(fake: FakeCoinGecko) -> None:
    url = f"{fake.root}/global"
    waits: list[float] = []
    fake.fault("/api/v3/global", 429, b'{"status":{"error_code":429}}', {"Retry-After": "3"})
    fake.fault("/api/v3/global", 418, b"banned", {"Retry-After": "2"})
    fake.fault("/api/v3/global", 503, b"busy")
    body = get_json(url, policy=RetryPolicy(attempts=4, backoff_initial=0.5), sleep=waits.append)
    assert body["data"]["total_market_cap"]["usd"] == 3.0e12
    assert waits == [3.0, 2.0, 0.5 * 2 ** 2]              # Retry-After honoured; backoff of attempt 3
    fake.fault("/api/v3/global", 500, b"x")
    fake.fault("/api/v3/global", 502, b"x")
    with pytest.raises(HttpError, match="HTTP 502.*after 2 attempts"):
        get_json(url, policy=RetryPolicy(attempts=2), sleep=waits.append)
    fake.fault("/api/v3/global", 401, b'{"error":"bad key"}')
    with pytest.raises(HttpError, match="HTTP 401"):
        get_json(url, policy=FAST, sleep=waits.append)
    fake.fault("/api/v3/global", 200, b'{"data": ')
    with pytest.raises(MalformedResponse, match="malformed JSON"):
        get_json(url, policy=FAST)
    fake.fault("/api/v3/global", 429, b"", {"Retry-After": "100000"})
    with pytest.raises(HttpError, match="beyond"):
        get_json(url, policy=FAST)


def test_provider_pages_and_key(fake: FakeCoinGecko) -> None:
    fake.coins += [Coin(f"c{i}", f"c{i}", f"C{i}", 1.0, 1000.0 + i, {"layer-1"}) for i in range(300)]
    provider = CoinGecko(fake.root, "demo-key", FAST)
    top = provider.top(260)
    assert len(top) == 260 and top[0].symbol == "BTC"
    calls = fake.calls("/api/v3/coins/markets")
    assert [c["page"] for c in calls] == ["1", "2"] and all(c["per_page"] == "250" for c in calls)
    assert fake.requests[-1][2]["x-cg-demo-api-key"] == "demo-key"
    assert provider.skipped == 1                            # the coin without a supply


def kafka_of(broker) -> KafkaSettings:
    return load(KafkaSettings, broker_port=broker.port)


def test_load_refresh_and_failure_keeps_data(broker, fake: FakeCoinGecko) -> None:
    kafka = kafka_of(broker)
    settings = load(ReferenceSettings, assets_provider_url=fake.root, assets_top_n=4, assets_category_limit=250,
                    assets_requests_per_minute=6000.0)

    async def scenario() -> None:
        loaded = await service.load_file(kafka)
        status = await service.assets_status(kafka)
        assert status and status["source"] == "bundled" and status["as_of"] == "2025-01-27"
        assert status["assets"] == loaded
        plan = await service.refresh(kafka, settings, provider=CoinGecko(fake.root, None, FAST))
        assets = await read_table(kafka, topics.ASSETS)
        assert assets["BTC"]["circulating_supply"] == 19_950_000.0 and assets["BTC"]["source"] == "coingecko"
        assert assets["RENDER"]["sectors"] == ["ai"] and assets["USDT"]["stablecoin"] is True
        assert len(assets) == loaded and plan.kept == loaded - 4
        status = await service.assets_status(kafka)
        assert status and status["source"] == "coingecko" and status["as_of"].endswith("Z")
        assert status["coverage_pct"] == pytest.approx(100 * plan.fetched_cap_usd / 3.0e12)
        before = dict(assets)
        fake.fault("/api/v3/coins/markets", 200, b'[{"id": "bitcoin", "symbol": ')
        with pytest.raises(service.RefreshError, match="malformed JSON.*previous data kept|previous data kept.*malformed"):
            await service.refresh(kafka, settings, provider=CoinGecko(fake.root, None, FAST))
        assert await read_table(kafka, topics.ASSETS) == before
        failed = await service.assets_status(kafka)
        assert failed and failed["source"] == "coingecko" and "malformed JSON" in failed["last_error"]
        assert failed["as_of"] == status["as_of"]

    asyncio.run(scenario())


def test_cli_refresh(broker, fake: FakeCoinGecko, tmp_path, monkeypatch) -> None:
    from services.cli import main

    monkeypatch.setenv("CRYPTOPULSE_ASSETS_REQUESTS_PER_MINUTE", "6000")
    mapping = tmp_path / "map.json"
    mapping.write_text(orjson.dumps({"sectors": {"chain": ["layer-1"]}}).decode())
    args = ["--broker-port", str(broker.port)]
    assert main(["assets", "load", *args]) == 0
    assert main(["assets", "refresh", "--top", "2", "--provider-url", fake.root, "--category-map", str(mapping),
                 *args]) == 0
    assets = asyncio.run(read_table(kafka_of(broker), topics.ASSETS))
    assert assets["ETH"]["sectors"] == ["chain"]
    fake.fault("/api/v3/coins/markets", 404, b'{"error": "category not found"}')
    assert main(["assets", "refresh", "--provider-url", fake.root, *args]) == 2


def test_periodic_refresh_until_stopped(broker, fake: FakeCoinGecko) -> None:
    """`up --source live`'s hourly loop, with a 1 s interval: it refreshes again, reports, stops on request."""
    kafka = kafka_of(broker)
    settings = load(ReferenceSettings, assets_provider_url=fake.root, assets_top_n=4, assets_refresh_interval=1.0,
                    assets_requests_per_minute=6000.0)
    said: list[str] = []

    async def scenario() -> None:
        await service.load_file(kafka)
        stop = asyncio.Event()
        task = asyncio.create_task(service.refresh_forever(kafka, settings, stop, said.append))
        while len(said) < 2:
            await asyncio.sleep(0.1)
        stop.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(scenario())
    assert all(line.startswith("reference data refreshed from coingecko") for line in said)
    assert "4 new" not in said[1] and "0 records published" in said[1]     # the second finds nothing new
