"""The command-line conventions, by running the real `cryptopulse` processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from importlib import metadata
from typing import Any

import jwt
import orjson

from services.common import topics
from tests.gateway.helpers import gateway_env, wait_ready

SECRET = "test-secret-of-at-least-32-bytes-long!"


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOPULSE_")}
    return subprocess.run([sys.executable, "-m", "services.cli", *args], env={**clean, **(env or {})},
                          capture_output=True, text=True, timeout=timeout)


def test_version_is_the_installed_distribution() -> None:
    done = cli("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"cryptopulse {metadata.version('cryptopulse')}"


def test_settings_show_effective_values_and_their_source() -> None:
    done = cli("settings", "--json", "--log-level", "DEBUG",
               env={"CRYPTOPULSE_BROKER_PORT": "19999", "CRYPTOPULSE_GATEWAY_AUTH_SECRET": SECRET})
    assert done.returncode == 0, done.stderr
    rows = {row["name"]: row for row in orjson.loads(done.stdout)}
    port = rows["CRYPTOPULSE_BROKER_PORT"]
    assert (port["value"], port["source"], port["default"]) == (19999, "env", 19092)
    assert (rows["CRYPTOPULSE_LOG_LEVEL"]["value"], rows["CRYPTOPULSE_LOG_LEVEL"]["source"]) == ("DEBUG", "flag")
    assert (rows["CRYPTOPULSE_GATEWAY_PORT"]["value"], rows["CRYPTOPULSE_GATEWAY_PORT"]["source"]) == (8765, "default")
    assert rows["CRYPTOPULSE_GATEWAY_AUTH_SECRET"]["value"] == "***"
    assert SECRET not in done.stdout
    text = cli("settings", env={"CRYPTOPULSE_BROKER_PORT": "19999"}).stdout
    line = next(ln for ln in text.splitlines() if ln.startswith("CRYPTOPULSE_BROKER_PORT "))
    assert line.split()[1:3] == ["19999", "env"]


def test_settings_with_a_bad_value_is_a_one_line_error() -> None:
    done = cli("settings", env={"CRYPTOPULSE_BROKER_PORT": "not-a-port"})
    assert done.returncode == 2
    assert "CRYPTOPULSE_BROKER_PORT" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_topics_list_json(module_broker: Any) -> None:
    done = cli("topics", "list", "--json", "--kafka", module_broker.bootstrap)
    assert done.returncode == 0, done.stderr
    rows = {row["name"]: row for row in orjson.loads(done.stdout)}
    assert set(rows) == {t.name for t in topics.ALL_TOPICS}
    for topic in topics.ALL_TOPICS:
        assert rows[topic.name]["partitions"] == rows[topic.name]["declared_partitions"] == topic.partitions
        assert (rows[topic.name]["key"], rows[topic.name]["cleanup_policy"]) == (topic.key, topic.cleanup_policy)


def test_token_needs_a_key_and_valid_channels() -> None:
    assert "CRYPTOPULSE_GATEWAY_AUTH_SECRET" in cli("token").stderr
    bad = cli("token", "--channels", "nosuch:1", env={"CRYPTOPULSE_GATEWAY_AUTH_SECRET": SECRET})
    assert bad.returncode == 2 and "unknown channel family" in bad.stderr


def _wait_exit(proc: Any, timeout: float = 20) -> int:
    deadline = time.monotonic() + timeout
    while proc.process.poll() is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"{proc.name} still running:\n{proc.output()}")
        time.sleep(0.1)
    return int(proc.process.returncode)


def test_token_watch_and_json_logs_against_a_real_gateway(module_broker: Any, services: Any) -> None:
    env = gateway_env(module_broker.bootstrap, CRYPTOPULSE_GATEWAY_AUTH_SECRET=SECRET,
                      CRYPTOPULSE_GATEWAY_AUTH_ISSUER="cryptopulse-test", CRYPTOPULSE_LOG_FORMAT="json")
    gateway = services("gateway", env=env)
    port = int(env["CRYPTOPULSE_GATEWAY_PORT"])
    wait_ready(port, gateway)
    url = f"ws://127.0.0.1:{port}/ws"

    made = cli("token", "--channels", "sector:*,alerts:*", "--ttl", "120", "--sub", "ops", env=env)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], issuer="cryptopulse-test")
    assert claims["channels"] == ["sector:*", "alerts:*"] and claims["sub"] == "ops"
    assert 119 <= claims["exp"] - claims["iat"] <= 120

    allowed = services("watch", ["--url", url, "--token", token, "--json", "sector:ai"], name="watch-ok")
    forbidden = services("watch", ["--url", url, "--token", token, "asset:BTC"], name="watch-forbidden")
    unknown = services("watch", ["--url", url, "--token", token, "nosuch:x"], name="watch-unknown")
    no_token = services("watch", ["--url", url, "sector:ai"], name="watch-no-token")
    assert _wait_exit(forbidden) == 1 and "forbidden" in forbidden.output()
    assert _wait_exit(unknown) == 1 and "unknown_channel" in unknown.output()
    # auth failed, not retried: the gateway sends `auth_failed` then closes with 4001; the watcher
    # ends on whichever it sees first (the close wins when it lands before the subscribe is sent)
    assert _wait_exit(no_token) == 1 and ("4001" in no_token.output() or "error auth_failed" in no_token.output())
    deadline = time.monotonic() + 15
    while '"type":"ack"' not in allowed.output():
        assert time.monotonic() < deadline, allowed.output()
        time.sleep(0.1)
    assert allowed.process.poll() is None

    gateway.stop()
    lines = [ln for ln in gateway.output().splitlines() if ln.strip()]
    assert lines
    records = [orjson.loads(ln) for ln in lines]
    assert all({"ts", "level", "service", "logger", "message"} <= r.keys() for r in records)
    assert {r["service"] for r in records} == {"gateway"}


def test_bad_log_format_is_refused() -> None:
    done = cli("gateway", "--kafka", "127.0.0.1:1", env={"CRYPTOPULSE_LOG_FORMAT": "xml"})
    assert done.returncode == 2
    assert "CRYPTOPULSE_LOG_FORMAT" in done.stderr


def test_token_signed_with_an_rs256_private_key(tmp_path: Any) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "key.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    done = cli("token", "--private-key", f"@{pem}", "--ttl", "60")
    assert done.returncode == 0, done.stderr
    claims = jwt.decode(done.stdout.strip(), key.public_key(), algorithms=["RS256"])
    assert "channels" not in claims and claims["exp"] - claims["iat"] == 60
