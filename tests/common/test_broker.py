"""The embedded broker and the topic registry against the real Tansu binary."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys

import pytest

from services.common.broker import EmbeddedBroker, answers_metadata, free_port
from services.common.errors import StartupError
from services.common.kafka import create_topics, describe_topics, wait_for_kafka
from services.common.topics import ALL_TOPICS


def test_broker_starts_answers_and_stops() -> None:
    broker = EmbeddedBroker(port=free_port()).start()
    try:
        assert answers_metadata(broker.host, broker.port)
    finally:
        broker.stop()
    assert not answers_metadata(broker.host, broker.port)


def test_topics_are_created_idempotently_with_declared_partitions() -> None:
    with EmbeddedBroker(port=free_port()) as broker:
        first = asyncio.run(create_topics(broker.bootstrap))
        second = asyncio.run(create_topics(broker.bootstrap))
        partitions = asyncio.run(describe_topics(broker.bootstrap))
    assert sorted(first) == sorted(t.name for t in ALL_TOPICS)
    assert second == []
    for topic in ALL_TOPICS:
        assert partitions[topic.name] == topic.partitions


def test_port_in_use_is_a_one_line_actionable_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(StartupError, match=f"port 127.0.0.1:{port} is already in use.*CRYPTOPULSE_BROKER_PORT"):
            EmbeddedBroker(port=port).start()


def test_missing_broker_binary_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.setenv("CALF_TANSU_BIN", "/nonexistent/tansu")
    with pytest.raises(StartupError, match="missing or not executable"):
        EmbeddedBroker(port=free_port()).start()


def test_unreachable_kafka_is_reported() -> None:
    with pytest.raises(StartupError, match="unreachable"):
        asyncio.run(wait_for_kafka(f"127.0.0.1:{free_port()}", timeout=1.5))


def test_cli_topics_list_and_create() -> None:
    with EmbeddedBroker(port=free_port()) as broker:
        base = [sys.executable, "-m", "services.cli", "topics"]
        flags = ["--kafka", broker.bootstrap]
        created = subprocess.run([*base, "create", *flags], capture_output=True, text=True, timeout=60)
        listed = subprocess.run([*base, "list", *flags], capture_output=True, text=True, timeout=60)
    assert created.returncode == 0, created.stderr
    assert listed.returncode == 0, listed.stderr
    for topic in ALL_TOPICS:
        assert f"{topic.name}" in created.stdout
        row = next(line for line in listed.stdout.splitlines() if line.startswith(topic.name + " "))
        assert row.split()[1] == str(topic.partitions)


def test_cli_reports_unreachable_kafka_in_one_line() -> None:
    result = subprocess.run([sys.executable, "-m", "services.cli", "topics", "list", "--kafka",
                             f"127.0.0.1:{free_port()}"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "unreachable" in result.stderr
