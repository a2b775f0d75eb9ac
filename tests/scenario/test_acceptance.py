"""Acceptance: the whole stack as processes on the embedded broker replays the 2025-01-27 scenario
at max speed; every figure and expected signal is then checked (a) through the gateway by a
websocket client and (b) on the derived topics by an independent confluent-kafka consumer; the
streaming results equal the oracle's batch recomputation over the raw topics, and the dead-letter
topic holds exactly the scenario's malformed frames."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from services.common import topics
from services.common.broker import EmbeddedBroker, free_port
from services.common.events import Liquidation, TradeBar
from services.gateway.protocol import FAMILY_BY_TOPIC
from services.ingestor.instruments import load_instruments
from services.scenario.figures import check_signals, evaluate_live, live_values, utc_date
from services.scenario.paths import END_MS
from services.scenario.report import collect
from services.scenario.source import open_scenario
from tests.conftest import ARTIFACTS, ServiceProcess, start_broker
from tests.processor.helpers import bar, produce

pytestmark = pytest.mark.timeout(720)

DENSITY, SEED, BAD, DUP = 0.02, 7, 0.002, 0.002
FINAL_TS = END_MS - 60_000 + 59_900          # the week's last trade: 2025-01-27 23:59:59.900
YEAR_3000 = 32_503_680_000_000
JUNK_HISTORY = b"{junk"
DERIVED = (topics.ASSET_STATS, topics.SECTOR_CAPS, topics.LIQUIDATION_TOTALS, topics.CANDLES,
           topics.INDICATORS, topics.ALERTS)


def read_topic(bootstrap: str, topic: topics.Topic) -> list[tuple[str, dict[str, Any]]]:
    """Every (key, value) of a topic from the beginning, by an independent librdkafka client."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"acceptance-{time.monotonic_ns()}",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    try:
        consumer.assign([TopicPartition(topic.name, p, OFFSET_BEGINNING) for p in range(topic.partitions)])
        out: list[tuple[str, dict[str, Any]]] = []
        done: set[int] = set()
        deadline = time.monotonic() + 30
        while len(done) < topic.partitions and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None:
                continue
            if message.error():
                if message.error().code() == -191:      # _PARTITION_EOF
                    done.add(message.partition())
                    continue
                raise RuntimeError(str(message.error()))
            key = message.key().decode() if message.key() else ""
            if message.value() == JUNK_HISTORY:
                continue                            # injected on purpose (send_hostile_records)
            out.append((key, json.loads(message.value())))
        return out
    finally:
        consumer.close()


def derived_records(bootstrap: str) -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]]]:
    """Records per gateway-style channel name (``family:key``), and the alerts."""
    records: dict[str, list[dict[str, Any]]] = {}
    alerts: list[dict[str, Any]] = []
    for topic in DERIVED:
        for key, value in read_topic(bootstrap, topic):
            records.setdefault(f"{FAMILY_BY_TOPIC[topic.name]}:{key}", []).append(value)
            if topic is topics.ALERTS:
                alerts.append(value)
    for channel in records:          # oldest first by event time, as the gateway would have them
        records[channel].sort(key=lambda v: (v.get("ts", 0), v.get("ts_emit", 0)))
    return records, alerts


class Stack:
    def __init__(self, broker: EmbeddedBroker, log_dir: Path) -> None:
        self.broker = broker
        self.gateway_port = free_port()
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "CRYPTOPULSE_KAFKA_BOOTSTRAP": broker.bootstrap,
               "CRYPTOPULSE_KAFKA_IDEMPOTENCE": "false", "CRYPTOPULSE_SCENARIO_DENSITY": str(DENSITY),
               "CRYPTOPULSE_SCENARIO_SEED": str(SEED), "CRYPTOPULSE_SCENARIO_BAD_FRACTION": str(BAD),
               "CRYPTOPULSE_SCENARIO_DUP_FRACTION": str(DUP), "CRYPTOPULSE_PROCESSOR_EMIT_INTERVAL": "0.5"}

        def start(name: str, *args: str) -> ServiceProcess:
            return ServiceProcess(name, [sys.executable, "-m", "services.cli", *args], env, log_dir)

        self.procs = [
            start("processor", "process", "--metrics-port", str(free_port())),
            start("gateway", "gateway", "--port", str(self.gateway_port), "--metrics-port", str(free_port())),
            start("ingestor", "ingest", "--source", "scenario", "--speed", "max", "--hold",
                  "--metrics-port", str(free_port())),
        ]
        self.url = f"ws://127.0.0.1:{self.gateway_port}/ws"
        self.started = time.monotonic()
        self.replayed_after: float | None = None

    @property
    def ingestor(self) -> ServiceProcess:
        return self.procs[2]

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.output()[-3000:]}" for p in self.procs)

    def wait_replayed(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while "source ended" not in self.ingestor.output():
            for proc in self.procs:
                assert proc.process.poll() is None, f"{proc.name} exited\n{self.logs()}"
            assert time.monotonic() < deadline, f"replay did not finish in {timeout} s\n{self.logs()}"
            time.sleep(1)
        self.replayed_after = time.monotonic() - self.started

    def wait_final(self, timeout: float) -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]]]:
        """Derived records once the processor has emitted the week's final state (all figures)."""
        deadline = time.monotonic() + timeout
        while True:
            records, alerts = derived_records(self.broker.bootstrap)
            total = records.get("sector:total", [])
            if total and total[-1].get("ts") == FINAL_TS \
                    and all(v.ok for v in evaluate_live(live_values(records))):
                return records, alerts
            if time.monotonic() > deadline:
                return records, alerts
            time.sleep(3)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        saved = ARTIFACTS / "scenario-acceptance"
        saved.mkdir(parents=True, exist_ok=True)
        for proc in self.procs:
            shutil.copyfile(proc.log_path, saved / proc.log_path.name)


def send_hostile_records(bootstrap: str) -> None:
    """While the processor catches up: a year-3000 bar, a bar of 2^63 trades (valid JSON, beyond
    int64) and a junk candle-history record; each must end as a processor dead letter, no figure moves."""
    base = orjson.loads(orjson.dumps(bar("BTC", END_MS - 3_600_000, END_MS - 3_599_000, (1e5,) * 4, 1e3, seq=77)))
    future = YEAR_3000 // 60_000 * 60_000
    year_3000 = {**base, "id": "hostile:year-3000", "minute": future, "ts_first": future, "ts_last": future,
                 "ts_recv": future + 5}
    huge = json.dumps({**base, "id": "hostile:2^63", "count": 2**63}).encode()
    asyncio.run(produce(bootstrap, topics.TRADE_BARS.name, [("BTC", orjson.dumps(year_3000)), ("BTC", huge)]))
    asyncio.run(produce(bootstrap, topics.CANDLE_HISTORY.name, [("total:1d", JUNK_HISTORY)]))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    broker = start_broker()
    running = Stack(broker, tmp_path_factory.mktemp("acceptance"))
    try:
        running.wait_replayed(timeout=150)
        send_hostile_records(broker.bootstrap)
        yield running
    finally:
        running.stop()
        broker.stop()


@pytest.fixture(scope="module")
def final(stack: Stack) -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]]]:
    # A correctness test, not a speed test: on a loaded 2-core machine the processor's catch-up
    # after the replay took more than the former 120 s (seen in CI under load).
    return stack.wait_final(timeout=360)


def _failures(records: dict[str, list[dict[str, Any]]], alerts: list[dict[str, Any]]) -> list[Any]:
    values = live_values(records)
    failed: list[Any] = [(v.figure.id, v.live, v.why) for v in evaluate_live(values) if not v.ok]
    failed += [(s.text, s.detail) for s in check_signals(values, alerts) if not s.ok]
    return failed


def _closes(records: dict[str, list[dict[str, Any]]]) -> list[tuple[str, Any, Any]]:
    """The daily total-cap closes and RSI the processor emitted (shown when a figure fails)."""
    last = {r["open_time"]: r for r in records.get("indicators:total:1d", []) if "open_time" in r}
    return [(utc_date(t), r.get("close"), r.get("rsi14")) for t, r in sorted(last.items())]


def test_every_figure_and_signal_on_the_derived_topics(stack: Stack, final: Any) -> None:
    records, alerts = final
    assert records.get("sector:total"), stack.logs()
    assert records["sector:total"][-1]["ts"] == FINAL_TS
    failed = _failures(records, alerts)
    assert not failed, (failed, _closes(records), stack.logs())


def test_every_figure_and_signal_through_the_gateway(stack: Stack, final: Any) -> None:
    records, alerts = asyncio.run(collect(stack.url, timeout=30))
    failed = _failures(records, alerts)
    assert not failed, (failed, _closes(records), stack.logs())
    signals = check_signals(live_values(records), alerts)
    raised = [s.alert for s in signals]
    assert all(raised[1:4]), (raised, [(a.get("kind"), a.get("subject")) for a in alerts])   # drawdown, surge, cascade


def test_streaming_results_equal_the_oracle(stack: Stack, final: Any) -> None:
    from services.processor.reference import bundled_universe
    from tests import oracle

    bars = [TradeBar.from_dict(v) for _, v in read_topic(stack.broker.bootstrap, topics.TRADE_BARS)
            if not str(v["id"]).startswith("hostile:")]
    liqs = [Liquidation.from_dict(v) for _, v in read_topic(stack.broker.bootstrap, topics.LIQUIDATIONS)]
    expected = oracle.compute(bars, liqs, bundled_universe())
    records, _ = final
    compared = 0
    for asset, want in expected["asset-stats"].items():
        got = records[f"asset:{asset}"][-1]
        for field in ("price", "price_24h_ago", "change_24h_pct", "volume_24h_usd", "volume_prev_24h_usd",
                      "market_cap_usd", "trades_24h"):
            assert got[field] == pytest.approx(want[field], rel=1e-9, abs=1e-9), (asset, field)
            compared += 1
    for key, want in expected["liquidation-totals"].items():
        got = records[f"liquidations:{key}"][-1]
        for field in ("long_usd", "short_usd", "total_usd", "long_count", "short_count", "count"):
            assert got[field] == pytest.approx(want[field], rel=1e-9, abs=1e-6), (key, field)
            compared += 1
    for sector, want in expected["sector-caps"].items():
        got = records[f"sector:{sector}"][-1]
        for field in ("cap_usd", "cap_24h_ago_usd", "change_24h_pct", "volume_24h_usd", "volume_prev_24h_usd"):
            assert got[field] == pytest.approx(want[field], rel=1e-9, abs=1e-9), (sector, field)
            compared += 1
    assert compared > 500


def test_deadletters_are_exactly_the_malformed_frames(stack: Stack, final: Any) -> None:
    scenario = open_scenario(instruments=load_instruments, density=DENSITY, seed=SEED, bad_fraction=BAD, dup_fraction=DUP)
    malformed = sorted(f.frame for f in scenario.malformed())
    letters = sorted(v["raw"] for _, v in read_topic(stack.broker.bootstrap, topics.DEADLETTER)
                     if not v["source"].startswith(("processor:", "gateway:")))   # those: the hostile records
    assert len(malformed) > 50
    assert letters == malformed


def test_hostile_records_are_processor_dead_letters_and_the_processor_stays_up(stack: Stack, final: Any) -> None:
    letters = [v for _, v in read_topic(stack.broker.bootstrap, topics.DEADLETTER)
               if v["source"].startswith(("processor:", "gateway:"))]
    found = sorted((v["source"], "year-3000" in v["raw"], "2^63" in v["raw"]) for v in letters)
    assert found == [(f"gateway:{topics.CANDLE_HISTORY.name}", False, False),   # the gateway serves history too
                     ("processor:candle_history", False, False), ("processor:trade_bars", False, True),
                     ("processor:trade_bars", True, False)], letters
    assert all(v["reason"] for v in letters)
    assert all(p.process.poll() is None for p in stack.procs), stack.logs()


def test_cryptopulse_report_command(stack: Stack, final: Any) -> None:
    done = subprocess.run([sys.executable, "-m", "services.cli", "report", "--json", "--url", stack.url,
                           "--timeout", "30"], capture_output=True, text=True, timeout=90)
    doc = json.loads(done.stdout)
    assert len(doc["figures"]) == 23 and len(doc["signals"]) == 5
    assert done.returncode == (0 if doc["ok"] else 1)
    assert [f["id"] for f in doc["figures"] if not f["pass"]] == [], stack.logs()
    table = subprocess.run([sys.executable, "-m", "services.cli", "report", "--url", stack.url, "--timeout", "30"],
                           capture_output=True, text=True, timeout=90)
    assert "total_cap" in table.stdout and "$3.38T ±1%" in table.stdout


async def _gateway_messages(url: str, quiet: float = 2.0) -> list[dict[str, Any]]:
    """Every data message of every channel family (one connection per family, some history)."""
    import orjson
    import websockets

    from services.gateway.protocol import FAMILIES

    async def family(name: str) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        async with websockets.connect(url, open_timeout=10, max_size=None) as ws:
            await ws.send(orjson.dumps({"op": "subscribe", "id": 1, "channels": [f"{name}:*"],
                                        "history": 0 if name in ("asset", "liquidations") else 20}).decode())
            while True:
                try:
                    got.append(orjson.loads(await asyncio.wait_for(ws.recv(), quiet)))
                except TimeoutError:
                    return got

    return [m for group in await asyncio.gather(*(family(f) for f in FAMILIES)) for m in group]


def test_topic_records_and_gateway_messages_conform_to_their_schemas(stack: Stack, final: Any,
                                                                      broker: EmbeddedBroker) -> None:
    """Typed payloads: real records of every topic against its schema file and the AsyncAPI document's
    Kafka message, and real gateway messages (data typed by family) against the websocket messages;
    every field a record carries is declared by its schema. The stack's processes read the bundled
    universe, so `cryptopulse assets load` publishes the reference records to a fresh broker."""
    from services.gateway.protocol import FAMILIES
    from tests.common.payloads import message_validator, schema_of, topic_validator, undeclared_fields

    loaded = subprocess.run([sys.executable, "-m", "services.cli", "assets", "load", "--kafka", broker.bootstrap],
                            env={**os.environ, "CRYPTOPULSE_KAFKA_IDEMPOTENCE": "false"},
                            capture_output=True, text=True, timeout=60)
    assert loaded.returncode == 0, loaded.stderr
    may_be_empty = {topics.TRADE_GAPS.name}
    problems: list[Any] = []
    for topic in topics.ALL_TOPICS:
        source = broker if topic in (topics.ASSETS, topics.REFERENCE_STATUS) else stack.broker
        values = [v for _, v in read_topic(source.bootstrap, topic)]
        if not values and topic.name not in may_be_empty:
            problems.append((topic.name, "no records"))
        sample = values[::max(1, len(values) // 2000)]
        validators = (topic_validator(topic), message_validator(topic.name.split(".", 1)[1]))
        schema = schema_of(topic)
        for value in sample:
            problems += [(topic.name, e.json_path, e.message) for v in validators for e in v.iter_errors(value)]
            problems += [(topic.name, "undeclared", path) for path in undeclared_fields(schema, value)]
    messages = asyncio.run(_gateway_messages(stack.url))
    snapshots = {m["channel"].split(":", 1)[0] for m in messages if m["type"] == "snapshot"}
    assert snapshots == set(FAMILIES), snapshots
    problems += [(m.get("channel"), e.json_path, e.message) for m in messages
                 for e in message_validator(m["type"]).iter_errors(m)]
    assert sorted(set(map(str, problems))) == []
