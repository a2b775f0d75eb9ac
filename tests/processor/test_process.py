"""``cryptopulse process`` as real processes on the embedded broker: output equals the oracle, bad
input is dead-lettered, a SIGKILLed worker recovers exactly, two workers give the same numbers."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from services.common import topics
from services.common.broker import EmbeddedBroker, free_port
from services.common.events import TradeBar
from services.common.settings import KafkaSettings, load
from services.processor.context import internal_topic_name
from services.processor.reference import BUNDLED_ASSETS, bundled_universe
from services.processor.reference_io import load_assets
from services.processor.settings import ProcessorSettings
from services.processor.signals import SignalEngine
from services.processor.stage_assets import AssetStage
from services.processor.stage_sectors import SectorStage
from tests import oracle
from tests.processor.data import ASSETS, market
from tests.processor.helpers import bar, differences, produce, read_latest, wait_until

pytestmark = pytest.mark.slow


def metric(body: str, series: str) -> float:
    for line in body.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


def worker_env(broker: EmbeddedBroker) -> dict[str, str]:
    return {"CRYPTOPULSE_BROKER_PORT": str(broker.port), "CRYPTOPULSE_PROCESSOR_METRICS_PORT": str(free_port()),
            "CRYPTOPULSE_PROCESSOR_EMIT_INTERVAL": "0.2", "CRYPTOPULSE_KAFKA_BOOTSTRAP": ""}


def send(broker: EmbeddedBroker, bars: list[Any], liqs: list[Any]) -> None:
    asyncio.run(produce(broker.bootstrap, topics.TRADE_BARS.name, [(b.base, b) for b in bars]))
    asyncio.run(produce(broker.bootstrap, topics.LIQUIDATIONS.name, [(q.instrument, q) for q in liqs]))


def mismatch(broker: EmbeddedBroker, expected: dict[str, dict[str, Any]]) -> list[str]:
    stats = read_latest(broker.bootstrap, topics.ASSET_STATS.name)
    totals = {k: v for k, v in read_latest(broker.bootstrap, topics.LIQUIDATION_TOTALS.name).items()
              if v["count"] or k in expected["liquidation-totals"]}
    sectors = read_latest(broker.bootstrap, topics.SECTOR_CAPS.name)
    candles = read_latest(broker.bootstrap, topics.CANDLES.name)
    return (differences(stats, expected["asset-stats"]) + differences(totals, expected["liquidation-totals"])
            + differences(sectors, expected["sector-caps"]) + differences(candles, expected["candles"]))


def assert_valid(broker: EmbeddedBroker) -> None:
    """The latest value of every key of every derived topic validates against its schema file."""
    for topic in (topics.ASSET_STATS, topics.LIQUIDATION_TOTALS, topics.SECTOR_CAPS, topics.CANDLES,
                  topics.INDICATORS):
        validator = Draft202012Validator(json.loads(topic.schema_path.read_text()))
        values = read_latest(broker.bootstrap, topic.name)
        assert values, f"nothing on {topic.name}"
        for value in values.values():
            validator.validate(value)


def agrees(broker: EmbeddedBroker, expected: dict[str, dict[str, Any]], timeout: float) -> None:
    try:
        wait_until(lambda: not mismatch(broker, expected), timeout=timeout, interval=1.0)
    except AssertionError:
        raise AssertionError("\n".join(mismatch(broker, expected)[:10])) from None


def uninterrupted_indicators(bars: list[TradeBar]) -> dict[str, dict[str, Any]]:
    """The latest indicators of every asset series, from the pure stages run on the whole stream."""
    universe = bundled_universe()
    assets, sectors = AssetStage(universe, 0.0), SectorStage(universe, 0.0)
    for i in range(0, len(bars), 50):   # batches, as a worker takes them (a bucket evicted within one
        batch = assets.apply((orjson.dumps(b), 0) for b in bars[i:i + 50])   # batch is never forwarded)
        sectors.apply(record for _asset, record in batch.records)
    engine = SignalEngine(load(ProcessorSettings))
    latest = {}
    for candle in sectors.due_candles(now=0.0):
        latest[f"{candle['series']}:{candle['interval']}"] = engine.on_candle(candle)[0]
    return {k: v for k, v in latest.items() if k.split(":")[0] in ASSETS}


def asset_indicators(broker: EmbeddedBroker) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in read_latest(broker.bootstrap, topics.INDICATORS.name).items()
            if k.split(":")[0] in ASSETS}


def test_process_emits_the_oracle_numbers_and_dead_letters_bad_input(broker: EmbeddedBroker, services,
                                                                     tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    env = worker_env(broker)
    worker = services("process", env=env)
    bars, liqs = market(seed=1, bars_per_asset=150, minutes=3_000, liquidations=80)
    bad = [b"{not json", orjson.dumps(bar("NOPE", bars[0].ts_first, bars[0].ts_first, (1, 1, 1, 1), 5)),
           orjson.dumps({**orjson.loads(orjson.dumps(bars[0])), "close": -1})]
    asyncio.run(produce(broker.bootstrap, topics.TRADE_BARS.name, [("BTC", raw) for raw in bad]))
    send(broker, bars + bars[:20], liqs)           # 20 bars delivered twice
    expected = oracle.compute(bars, liqs, bundled_universe())
    agrees(broker, expected, timeout=60)
    assert_valid(broker)
    letters = read_latest(broker.bootstrap, topics.DEADLETTER.name)
    assert letters["processor:trade_bars"]["reason"]
    body = urllib.request.urlopen(f"http://127.0.0.1:{env['CRYPTOPULSE_PROCESSOR_METRICS_PORT']}/metrics").read().decode()
    assert 'cryptopulse_processor_events_total{outcome="deadletter",stream="trade_bars"} 3.0' in body
    redelivered = sum(metric(body, f'cryptopulse_processor_events_total{{outcome="{o}",stream="trade_bars"}}')
                      for o in ("duplicate", "late_dropped"))   # the first bars are older than the ring by then
    assert redelivered == 20
    # the packer exports the lag of the trade-bars partitions it packs
    assert 'cryptopulse_processor_consumer_lag_messages{partition="0",topic="cryptopulse.trade-bars"}' in body
    # a message on the pack topic that is not a pack is a dead letter with its reason, and counted
    packs = internal_topic_name(load(ProcessorSettings), "trade-bar-packs")
    asyncio.run(produce(broker.bootstrap, packs, [("BTC", b"CPK1 not a pack")]))
    wait_until(lambda: "malformed trade-bars pack" in read_latest(
        broker.bootstrap, topics.DEADLETTER.name)["processor:trade_bars"]["reason"], timeout=30)
    body = urllib.request.urlopen(f"http://127.0.0.1:{env['CRYPTOPULSE_PROCESSOR_METRICS_PORT']}/metrics").read().decode()
    assert 'cryptopulse_processor_events_total{outcome="deadletter",stream="trade_bars"} 4.0' in body
    # a redelivery that changes nothing publishes nothing (the emitter compares with what it sent)
    stats_sent = 'cryptopulse_processor_updates_emitted_total{topic="cryptopulse.asset-stats"}'
    duplicates = 'cryptopulse_processor_events_total{outcome="duplicate",stream="trade_bars"}'
    metrics_url = f"http://127.0.0.1:{env['CRYPTOPULSE_PROCESSOR_METRICS_PORT']}/metrics"
    now_body = urllib.request.urlopen(metrics_url).read().decode()
    before = metric(now_body, stats_sent), metric(now_body, duplicates)
    send(broker, bars[-20:], [])
    wait_until(lambda: metric(urllib.request.urlopen(metrics_url).read().decode(), duplicates) == before[1] + 20,
               timeout=30)
    time.sleep(2.0)                               # ten emission intervals
    assert metric(urllib.request.urlopen(metrics_url).read().decode(), stats_sent) == before[0]
    # reference data: a new supply on the assets topic is applied without a restart
    data = json.loads(BUNDLED_ASSETS.read_text())
    for asset in data["assets"]:
        if asset["asset"] == "BTC":
            asset["circulating_supply"] *= 2
    changed = tmp_path / "assets.json"
    changed.write_text(json.dumps(data))
    assert asyncio.run(load_assets(load(KafkaSettings, broker_port=broker.port), changed)) == len(data["assets"])
    price = expected["asset-stats"]["BTC"]["price"]
    supply = next(a["circulating_supply"] for a in data["assets"] if a["asset"] == "BTC")
    wait_until(lambda: read_latest(broker.bootstrap, topics.ASSET_STATS.name)["BTC"]["market_cap_usd"]
               == price * supply, timeout=30)
    started = time.monotonic()
    assert worker.stop(signal.SIGTERM, timeout=15) == 0
    assert time.monotonic() - started < 10


def test_a_worker_killed_mid_stream_recovers_exactly(broker: EmbeddedBroker, services) -> None:  # type: ignore[no-untyped-def]
    env = worker_env(broker)
    bars, liqs = market(seed=2, bars_per_asset=150, minutes=3_500, liquidations=80)
    half_b, half_l = len(bars) // 2, len(liqs) // 2
    first = services("process", env=env, name="first")
    send(broker, bars[:half_b], liqs[:half_l])
    # the first worker has closed candles (its engine state is stored) and committed past them
    wait_until(lambda: len(asset_indicators(broker)) == 3 * len(ASSETS), timeout=40)
    time.sleep(2.5)
    send(broker, bars[half_b:half_b + 50], liqs[half_l:half_l + 10])
    first.stop(signal.SIGKILL)
    send(broker, bars[half_b + 50:], liqs[half_l + 10:])
    # The killed member stays in the group until its session times out (10 s in embedded mode); the
    # restart comes after it, like a supervisor's restart delay. (Restarting at once, through the
    # two rebalances, passes too since recovery reads the changelogs to their true end.)
    time.sleep(11)
    second = services("process", env={**env, "CRYPTOPULSE_PROCESSOR_METRICS_PORT": str(free_port())}, name="second")
    agrees(broker, oracle.compute(bars, liqs, bundled_universe()), timeout=60)
    # the indicators continue from the closes before the kill (the engine's state is in its table)
    expected = uninterrupted_indicators(bars)
    try:
        wait_until(lambda: not differences(asset_indicators(broker), expected), timeout=30, interval=1.0)
    except AssertionError:
        raise AssertionError("\n".join(differences(asset_indicators(broker), expected)[:5])) from None
    assert re.search(r"signal engine: [1-9]\d* series states restored", second.output())


def test_two_workers_split_the_partitions_and_agree_with_the_oracle(broker: EmbeddedBroker, services) -> None:  # type: ignore[no-untyped-def]
    env = worker_env(broker)
    a = services("process", env=env, name="a")
    b = services("process", env={**env, "CRYPTOPULSE_PROCESSOR_METRICS_PORT": str(free_port())}, name="b")
    bars, liqs = market(seed=3, bars_per_asset=120, minutes=2_000, liquidations=60)
    send(broker, bars, liqs)
    agrees(broker, oracle.compute(bars, liqs, bundled_universe()), timeout=60)
    assert a.process.poll() is None and b.process.poll() is None
