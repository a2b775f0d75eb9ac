"""A bad value of one service's setting, seen by running the real `cryptopulse` process: a one-line
error naming the variable from the commands that use it, and no harm to any other command."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import typing
from typing import Any

import orjson
import pytest

from services.catalog import settings_classes
from services.cli import build_parser
from services.common.settings import env_name


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOPULSE_")}
    return subprocess.run([sys.executable, "-m", "services.cli", *args], env={**clean, **env},
                          capture_output=True, text=True, timeout=60)


def junk_environment() -> dict[str, str]:
    """A value no number or boolean setting of any service accepts, for every such setting."""
    junk: dict[str, str] = {}
    for cls in settings_classes():
        hints = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):
            if (set(typing.get_args(hints[field.name])) | {hints[field.name]}) & {int, float, bool}:
                junk[env_name(field.name)] = "abc"
    return junk


def test_the_reported_command_prints_help_and_the_user_of_the_setting_fails_in_one_line() -> None:
    bad = {"CRYPTOPULSE_GATEWAY_PORT": "abc"}
    helped = cli("--help", env=bad)
    assert helped.returncode == 0 and "usage: cryptopulse" in helped.stdout and not helped.stderr
    for command in (["gateway"], ["watch", "sector:ai"], ["report"]):
        done = cli(*command, env=bad)
        assert done.returncode == 2, (command, done.stdout, done.stderr)
        assert done.stderr.strip().splitlines() == [
            f"cryptopulse {command[0]}: error: CRYPTOPULSE_GATEWAY_PORT='abc' is not an integer"]


def test_other_commands_still_work(module_broker: Any) -> None:
    bad = {"CRYPTOPULSE_GATEWAY_PORT": "abc", "CRYPTOPULSE_PROCESSOR_BATCH_SIZE": "many",
           "CRYPTOPULSE_INGESTOR_METRICS_PORT": "-"}
    listed = cli("topics", "list", "--kafka", module_broker.bootstrap, env=bad)
    assert listed.returncode == 0, listed.stderr
    assert "trades" in listed.stdout
    metrics = cli("metrics", env=bad)
    assert metrics.returncode == 0 and "cryptopulse_gateway_" in metrics.stdout


def test_no_setting_is_read_while_the_command_line_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every sub-command's --help works with every numeric/boolean setting set to junk at once."""
    junk = junk_environment()
    assert "CRYPTOPULSE_GATEWAY_PORT" in junk and "CRYPTOPULSE_METRICS_IDLE_TIMEOUT" in junk
    for variable, value in junk.items():
        monkeypatch.setenv(variable, value)
    parser = build_parser()
    commands = next(a.choices for a in parser._subparsers._group_actions)  # type: ignore[union-attr]
    assert commands and {"gateway", "watch", "report", "ingest", "process", "up"} <= set(commands)
    for command in commands:
        with pytest.raises(SystemExit) as exited:
            build_parser().parse_args([command, "--help"])
        assert exited.value.code == 0, command


def test_the_embedded_broker_refuses_a_secure_protocol_rather_than_run_in_the_clear() -> None:
    env = {"CRYPTOPULSE_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "CRYPTOPULSE_KAFKA_SASL_USERNAME": "svc",
           "CRYPTOPULSE_KAFKA_SASL_PASSWORD": "pw", "CRYPTOPULSE_BROKER_PORT": "1"}
    for command in ("broker", "up"):
        done = cli(command, env=env)
        assert done.returncode == 2, (command, done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "PLAINTEXT only" in lines[0] and "CRYPTOPULSE_KAFKA_BOOTSTRAP" in lines[0]


def test_settings_shows_a_secret_read_from_its_file_as_set_and_hidden(tmp_path: Any) -> None:
    secret = tmp_path / "password"
    secret.write_text("file-secret\n")
    env = {"CRYPTOPULSE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "CRYPTOPULSE_KAFKA_SASL_USERNAME": "svc",
           "CRYPTOPULSE_KAFKA_SASL_PASSWORD_FILE": str(secret)}
    done = cli("settings", "--json", env=env)
    assert done.returncode == 0, done.stderr
    row = next(r for r in orjson.loads(done.stdout) if r["name"] == "CRYPTOPULSE_KAFKA_SASL_PASSWORD")
    assert (row["value"], row["source"]) == ("***", "env")
    assert "file-secret" not in done.stdout
