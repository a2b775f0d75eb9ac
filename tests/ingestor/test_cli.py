"""The ingestor's commands as real processes: ingest/replay a recording, record from a fake venue."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import urllib.request
from pathlib import Path

from services.common import topics
from services.common.broker import EmbeddedBroker, free_port
from services.common.frames import RawFrame
from services.ingestor.sources import read_recording
from tests.ingestor.fakes.binance_usdm import FakeBinance
from tests.ingestor.kafka_helpers import read_all

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "services" / "ingestor" / "data" / "sample-binance-usdm.jsonl"


def _env(broker: EmbeddedBroker | None = None, **extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "CRYPTOPULSE_INGESTOR_METRICS_PORT": str(free_port()), **extra}
    if broker is not None:
        env.update(CRYPTOPULSE_KAFKA_BOOTSTRAP=broker.bootstrap, CRYPTOPULSE_KAFKA_IDEMPOTENCE="false")
    return env


async def _run(*args: str, env: dict[str, str], timeout: float = 60) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "services.cli", *args, env=env, cwd=REPO,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode or 0, out.decode(errors="replace")


def test_ingest_replay_holds_serves_metrics_and_stops_on_sigterm(broker: EmbeddedBroker) -> None:
    env = _env(broker)

    async def run() -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.cli", "ingest", "--source", f"replay:{SAMPLE}", "--speed", "max",
            env=env, cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        assert proc.stdout is not None
        lines: list[str] = []
        while not any("holding" in line for line in lines):
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            assert line, "".join(lines)
            lines.append(line.decode())
        url = f"http://127.0.0.1:{env['CRYPTOPULSE_INGESTOR_METRICS_PORT']}/metrics"
        metrics = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=10).read().decode())
        proc.send_signal(signal.SIGTERM)
        rest, _ = await asyncio.wait_for(proc.communicate(), 10)
        return proc.returncode or 0, "".join(lines) + rest.decode(), metrics

    code, output, metrics = asyncio.run(run())
    assert code == 0, output
    frames = sum(1 for _ in read_recording(SAMPLE))
    assert f"{frames} frames ({frames} ok, 0 ignored, 0 dead letters)" in output
    assert f'cryptopulse_ingestor_frames_total{{outcome="ok",venue="binance-usdm"}} {frames}.0' in metrics
    published = asyncio.run(read_all(broker.bootstrap, [topics.TRADES.name, topics.LIQUIDATIONS.name]))
    assert len(published[topics.TRADES.name]) + len(published[topics.LIQUIDATIONS.name]) == frames


def test_record_from_a_fake_venue_then_replay_the_zstd_file(broker: EmbeddedBroker, tmp_path: Path) -> None:
    out = tmp_path / "rec.jsonl.zst"

    async def record() -> tuple[int, str, list[int]]:
        async with FakeBinance() as fake:
            env = _env(CRYPTOPULSE_VENUE_URL_OVERRIDE=fake.url)
            task = asyncio.create_task(_run("record", "--venues", "binance-usdm", "--symbols", "BTCUSDT", "ETHUSDT",
                                            "--out", str(out), "--frames", "40", env=env))
            await fake.wait_for_clients(1, timeout=60)
            assert fake.streams_per_connect[0] == ["btcusdt@aggTrade", "ethusdt@aggTrade", "!forceOrder@arr"]
            ids = await fake.burst("BTCUSDT", 30)
            for _ in range(5):
                await fake.trade("ETHUSDT", price="3188.5", qty="1.5")
                await fake.liquidation("SOLUSDT", side="BUY")
            code, output = await task
        return code, output, ids

    code, output, ids = asyncio.run(record())
    assert code == 0, output
    frames = [f for f in read_recording(out) if isinstance(f, RawFrame)]
    assert len(frames) == 40 and all(f.venue == "binance-usdm" for f in frames)
    code, output = asyncio.run(_run("replay", str(out), "--speed", "max", "--no-hold", env=_env(broker)))
    assert code == 0, output
    assert "40 frames (40 ok, 0 ignored, 0 dead letters)" in output
    published = asyncio.run(read_all(broker.bootstrap, [topics.TRADES.name, topics.LIQUIDATIONS.name]))
    btc = [int(v["trade_id"]) for _, v in published[topics.TRADES.name] if v["symbol"] == "BTCUSDT"]
    assert sorted(btc) == ids
    assert {v["liquidated_side"] for _, v in published[topics.LIQUIDATIONS.name]} == {"short"}


def test_missing_recording_is_a_one_line_error() -> None:
    code, output = asyncio.run(_run("ingest", "--source", "replay:/nonexistent/rec.jsonl", env=_env()))
    assert code == 2
    assert output.strip().count("\n") == 0 and "does not exist" in output


def test_unknown_source_names_the_plugged_ones() -> None:
    """The scenario reaches the ingestor through the catalog, not by import: it is offered by name."""
    code, output = asyncio.run(_run("ingest", "--source", "nosuch", env=_env()))
    assert code == 2
    assert "unknown source 'nosuch': use scenario, replay:PATH or live" in output


def test_sigterm_mid_replay_flushes_and_exits_zero(broker: EmbeddedBroker) -> None:
    async def run() -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.cli", "replay", str(SAMPLE), "--speed", "1", env=_env(broker), cwd=REPO,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        assert proc.stdout is not None
        while b"ingesting:" not in await asyncio.wait_for(proc.stdout.readline(), 60):
            pass
        await asyncio.sleep(2)          # the sample spans minutes of recorded time: mid-stream
        proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(proc.communicate(), 10)
        return proc.returncode or 0, out.decode()

    code, output = asyncio.run(run())
    assert code == 0, output
    assert "source stopped:" in output
    published = asyncio.run(read_all(broker.bootstrap, [topics.TRADES.name, topics.TRADE_BARS.name]))
    trades = published[topics.TRADES.name]
    assert 0 < len(trades) < sum(1 for _ in read_recording(SAMPLE))
    assert sum(b["count"] for _, b in published[topics.TRADE_BARS.name]) == len(trades)   # open bars flushed


def test_live_ingest_from_a_fake_venue_publishes_trades_bars_and_liquidations(broker: EmbeddedBroker) -> None:
    names = [topics.TRADES.name, topics.TRADE_BARS.name, topics.LIQUIDATIONS.name]

    async def run() -> tuple[int, str, list[int], dict[str, list[tuple[bytes, dict[str, object]]]]]:
        async with FakeBinance() as fake:
            env = _env(broker, CRYPTOPULSE_VENUE_URL_OVERRIDE=fake.url, CRYPTOPULSE_INGEST_SYMBOLS="BTCUSDT")
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "services.cli", "ingest", "--source", "live", "--venues", "binance-usdm",
                env=env, cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
            await fake.wait_for_clients(1, timeout=60)
            ids = await fake.burst("BTCUSDT", 50)
            await fake.liquidation("BTCUSDT", side="SELL")
            deadline = asyncio.get_running_loop().time() + 30
            while True:   # bars close on the wall clock (<= 250 ms) while the source keeps running
                published = await read_all(broker.bootstrap, names)
                if sum(int(str(b["count"])) for _, b in published[topics.TRADE_BARS.name]) == len(ids) \
                        and published[topics.LIQUIDATIONS.name]:
                    break
                assert asyncio.get_running_loop().time() < deadline, published
                await asyncio.sleep(0.3)
            proc.send_signal(signal.SIGTERM)
            out, _ = await asyncio.wait_for(proc.communicate(), 10)
        return proc.returncode or 0, out.decode(), ids, published

    code, output, ids, published = asyncio.run(run())
    assert code == 0, output
    assert [int(str(v["trade_id"])) for _, v in published[topics.TRADES.name]] == ids
    assert [v["liquidated_side"] for _, v in published[topics.LIQUIDATIONS.name]] == ["long"]
