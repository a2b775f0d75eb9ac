"""``cryptopulse`` command line: one sub-command per service plus the tools around them.

Settings come from ``CRYPTOPULSE_*`` variables; flags given here override them. Each service
package adds its own sub-commands through ``register(subparsers)`` in its ``cli`` module; which
modules those are is :mod:`services.catalog`'s to say.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

import orjson

from services.catalog import COMMAND_MODULES, plug_sources, settings_classes
from services.common.cli_flags import add_kafka_flags, kafka_flags, kafka_settings
from services.common.errors import StartupError
from services.common.settings import FILE_SUFFIX, SettingsError, env_name, load

Handler = Callable[[argparse.Namespace], int]


def _cmd_broker(args: argparse.Namespace) -> int:
    from services.common.broker import main_foreground, refuse_secure_embedded

    kafka = kafka_settings(args)
    if not kafka.embedded:
        raise StartupError("CRYPTOPULSE_KAFKA_BOOTSTRAP is set: an external Kafka is in use, no broker to start")
    refuse_secure_embedded(kafka)
    return main_foreground(kafka.broker_host, kafka.broker_port)


def _cmd_topics(args: argparse.Namespace) -> int:
    from services.common.kafka import create_topics, describe_topics, wait_for_kafka
    from services.common.topics import ALL_TOPICS

    kafka = kafka_settings(args)

    async def run() -> int:
        await wait_for_kafka(kafka, timeout=10)
        if args.action == "create":
            created = await create_topics(kafka, replication_factor=args.replication_factor)
            for topic in ALL_TOPICS:
                state = "created" if topic.name in created else "exists"
                print(f"{topic.name:32} {state}")
            return 0
        partitions = await describe_topics(kafka)
        if args.json:
            rows = [{"name": t.name, "partitions": partitions.get(t.name), "declared_partitions": t.partitions,
                     "cleanup_policy": t.cleanup_policy, "retention_ms": t.retention_ms, "key": t.key,
                     "schema": t.schema, "about": t.about} for t in ALL_TOPICS]
            print(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
            return 0
        print(f"{'topic':32} {'partitions':>10}  {'declared':>8}  cleanup   key")
        for topic in ALL_TOPICS:
            have = partitions.get(topic.name)
            shown = "missing" if have is None else str(have)
            print(f"{topic.name:32} {shown:>10}  {topic.partitions:>8}  {topic.cleanup_policy:8}  {topic.key}")
        return 0

    return asyncio.run(run())


SECRET_WORDS = ("secret", "password", "private")


def effective_settings(flags: dict[str, Any], environ: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Every setting's effective value and where it came from: ``flag``, ``env`` or ``default``.

    Secrets are shown as ``"***"`` when set. A bad value raises SettingsError (naming the variable).
    """
    env = dict(os.environ if environ is None else environ)
    rows: list[dict[str, Any]] = []
    for cls in settings_classes():
        given = {k: v for k, v in flags.items() if v is not None and k in {f.name for f in dataclasses.fields(cls)}}
        loaded = load(cls, environ=env, **given)
        for field in dataclasses.fields(cls):
            variable = env_name(field.name)
            from_env = variable in env or variable + FILE_SUFFIX in env
            source = "flag" if field.name in given else "env" if from_env else "default"
            value = getattr(loaded, field.name)
            if isinstance(value, tuple):
                value = list(value)
            if value is not None and any(word in field.name for word in SECRET_WORDS):
                value = "***"
            rows.append({"group": cls.__name__, "name": variable, "value": value, "source": source,
                         "default": list(field.default) if isinstance(field.default, tuple) else field.default,
                         "help": field.metadata.get("help", "")})
    return rows


def _cmd_settings(args: argparse.Namespace) -> int:
    rows = effective_settings(kafka_flags(args))
    if args.json:
        print(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return 0
    group = None
    for row in rows:
        if row["group"] != group:
            group = row["group"]
            print(f"# {group}")
        shown = "" if row["value"] is None else ",".join(row["value"]) if isinstance(row["value"], list) \
            else str(row["value"])
        print(f"{row['name']:40} {shown:24} {row['source']:8} {row['help']}")
    return 0


def _cmd_metrics(args: argparse.Namespace) -> int:
    from pathlib import Path

    from services.catalog import all_metrics
    from services.common.metrics_doc import render

    text = render(all_metrics())
    if args.check is None:
        print(text, end="")
        return 0
    if Path(args.check).read_text() != text:
        print(f"{args.check} is out of date: run `cryptopulse metrics > {args.check}`", file=sys.stderr)
        return 1
    return 0


def package_version() -> str:
    try:
        return metadata.version("cryptopulse")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text}")
    return value


def _cmd_token(args: argparse.Namespace) -> int:
    from services.gateway.auth import AuthError, issue_token
    from services.gateway.settings import GatewaySettings

    channels = None if args.channels is None else [c for arg in args.channels for c in arg.split(",") if c]
    try:
        token = issue_token(load(GatewaySettings), channels, args.ttl, subject=args.subject,
                            private_key=args.private_key)
    except (AuthError, OSError, ValueError) as exc:
        raise StartupError(str(exc)) from None
    print(token)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cryptopulse", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"cryptopulse {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    broker = sub.add_parser("broker", help="run the embedded Kafka broker (Tansu) in the foreground")
    add_kafka_flags(broker)
    broker.set_defaults(handler=_cmd_broker)

    topics = sub.add_parser("topics", help="create or list the topics of the registry")
    topics.add_argument("action", choices=("create", "list"))
    topics.add_argument("--replication-factor", type=int, default=1)
    topics.add_argument("--json", action="store_true", help="machine-readable output (list)")
    add_kafka_flags(topics)
    topics.set_defaults(handler=_cmd_topics)

    settings = sub.add_parser("settings", help="every CRYPTOPULSE_* setting: effective value and its source "
                                                  "(default, env or flag)")
    settings.add_argument("--json", action="store_true", help="machine-readable output")
    add_kafka_flags(settings)
    settings.set_defaults(handler=_cmd_settings)

    token = sub.add_parser("token", help="make a JWT for the gateway's configured secret (or an RS256 key)")
    token.add_argument("--channels", nargs="+", metavar="CHANNEL",
                       help="channels or 'prefix*' patterns the token allows (comma lists too); default: all")
    token.add_argument("--ttl", type=_positive_int, default=3600, help="seconds until it expires (default 3600)")
    token.add_argument("--sub", dest="subject", help="the token's subject ('sub' claim)")
    token.add_argument("--private-key", metavar="PEM|@FILE",
                       help="sign RS256 with this private key instead of CRYPTOPULSE_GATEWAY_AUTH_SECRET")
    token.set_defaults(handler=_cmd_token)

    metrics = sub.add_parser("metrics", help="print the metrics contract (markdown) of every service")
    metrics.add_argument("--check", metavar="FILE", help="fail if FILE differs from the contract")
    metrics.set_defaults(handler=_cmd_metrics)

    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(sub)
    plug_sources()
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except (StartupError, SettingsError) as exc:
        print(f"cryptopulse {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
