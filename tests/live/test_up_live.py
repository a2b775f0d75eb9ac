"""`cryptopulse up --source live` against local fakes only: CoinGecko for the reference data,
Binance's kline REST API for the backfill and its websocket for live trades. Soon after the start
(the issue's target is 60 s; ~20-35 s measured here; the test allows WARM_WITHIN on a shared
machine) the gateway serves total:1d indicators with SMA 200 and RSI defined, and caps computed with
the refreshed supplies; after a restart the journal brings the liquidation totals back."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.ingestor.instruments import load_instruments
from services.reference.service import read_snapshot
from tests.e2e.stack import Up, collect, stack_env
from tests.ingestor.fakes.binance_usdm import FakeBinance
from tests.live.fake_coingecko import FakeCoinGecko, snapshot_coins
from tests.live.fake_klines import FakeKlines

WARM_WITHIN = 120.0   # seconds; the 60 s target holds on an idle machine, CI machines are shared
GROWTH = 1.1          # the provider's supplies are 10 % above the bundled snapshot's


class LiveVenue:
    """The fake Binance websocket server on its own event loop in a thread."""

    def __init__(self) -> None:
        self.fake = FakeBinance(ping_interval=5.0)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> LiveVenue:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.fake.__aenter__(), self.loop).result(5)
        return self

    def run(self, coro) -> object:  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.fake.__aexit__(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def provider() -> Iterator[FakeCoinGecko]:
    server = FakeCoinGecko(snapshot_coins(GROWTH)).start()
    yield server
    server.stop()


@pytest.fixture
def klines() -> Iterator[FakeKlines]:
    symbols = {s: i.contract_size for s, i in load_instruments("binance-usdm").items()}
    server = FakeKlines("binance", symbols, None).start()
    yield server
    server.stop()


def liquidations_total(url: str, expected: float, timeout: float) -> float:
    got = asyncio.run(collect(url, ["liquidations:24h:all"], timeout=timeout,
                              until=lambda got: got.get("liquidations:24h:all", {}).get("total_usd") == expected))
    return float(got["liquidations:24h:all"]["total_usd"])


def test_up_live_is_warm_from_the_first_minute_and_restarts_without_amnesia(
        tmp_path: Path, provider: FakeCoinGecko, klines: FakeKlines) -> None:
    with LiveVenue() as venue:
        env = stack_env(
            CRYPTOPULSE_INGEST_VENUES="binance-usdm", CRYPTOPULSE_VENUE_URL_OVERRIDE=venue.fake.url,
            CRYPTOPULSE_ASSETS_PROVIDER_URL=provider.root, CRYPTOPULSE_ASSETS_REQUESTS_PER_MINUTE="6000",
            CRYPTOPULSE_BACKFILL_VENUES="binance-usdm", CRYPTOPULSE_BACKFILL_BINANCE_URL=klines.url,
            CRYPTOPULSE_BACKFILL_MINUTES="120", CRYPTOPULSE_BACKFILL_HOURS="48", CRYPTOPULSE_BACKFILL_DAYS="210",
            CRYPTOPULSE_BACKFILL_BINANCE_WEIGHT_PER_MINUTE="1000000", CRYPTOPULSE_PROCESSOR_EMIT_INTERVAL="0.2",
            CRYPTOPULSE_DATA_DIR=str(tmp_path / "data"))
        started = time.monotonic()
        stack = Up(env, tmp_path / "up.log", "--source", "live")
        try:
            stack.wait_for_output("Ctrl-C stops everything", timeout=WARM_WITHIN)
            out = stack.output()
            assert "reference data refreshed from coingecko" in out and "from coingecko, as of" in out
            assert "backfill: " in out and "live trades count from" in out
            while not any("btcusdt@aggTrade" in streams for streams in list(venue.fake.clients.values())):
                assert time.monotonic() - started < WARM_WITHIN, stack.output()
                time.sleep(0.2)
            venue.fake.clock = time.time_ns() // 1_000_000
            venue.run(venue.fake.burst("BTCUSDT", 3))                 # live trades after the backfill

            def warm(got: dict) -> bool:  # type: ignore[type-arg]
                daily = got.get("indicators:total:1d", {})
                return (daily.get("sma200") is not None and daily.get("rsi14") is not None
                        and got.get("asset:BTC", {}).get("price") == 101681.4
                        and got.get("sector:ai", {}).get("cap_usd", 0) > 0)

            latest = asyncio.run(collect(stack.ws_url, ["indicators:total:1d", "asset:BTC", "sector:ai"], until=warm,
                                         timeout=max(1.0, WARM_WITHIN - (time.monotonic() - started))))
            print(f"warm after {time.monotonic() - started:.1f} s")
            btc = latest["asset:BTC"]
            bundled = next(r for r in read_snapshot().records if r["asset"] == "BTC")["circulating_supply"]
            assert btc["circulating_supply"] == pytest.approx(bundled * GROWTH)
            assert btc["market_cap_usd"] == pytest.approx(btc["price"] * bundled * GROWTH)
            report = subprocess.run([sys.executable, "-m", "services.cli", "report", "--json", "--url", stack.ws_url,
                                     "--timeout", "15"], capture_output=True, text=True, timeout=60)
            reference = json.loads(report.stdout)["reference"]
            assert reference["source"] == "coingecko" and reference["as_of"].endswith("Z"), report.stdout[:500]
            assert reference["coverage_pct"] > 0 and reference["last_error"] is None

            for side in ("SELL", "BUY", "SELL"):                        # 3 x 0.5 BTC at 100100
                venue.run(venue.fake.liquidation("BTCUSDT", side))
            assert liquidations_total(stack.ws_url, 3 * 50_050.0, timeout=60) == 3 * 50_050.0
            assert "journal: " in stack.output()
            stack.process.send_signal(signal.SIGINT)
            stack.process.wait(timeout=30)
        finally:
            stack.close()
        restarted = Up(env, tmp_path / "up2.log", "--source", "live")   # a fresh in-memory broker
        try:
            restarted.wait_for_output("Ctrl-C stops everything", timeout=WARM_WITHIN)
            assert "replayed from" in restarted.output()
            assert liquidations_total(restarted.ws_url, 3 * 50_050.0, timeout=60) == 3 * 50_050.0
            warm = asyncio.run(collect(restarted.ws_url, ["indicators:total:1d"], timeout=60,
                                       until=lambda got: got.get("indicators:total:1d", {}).get("sma200") is not None))
            assert warm["indicators:total:1d"]["rsi14"] is not None
        finally:
            restarted.close()
