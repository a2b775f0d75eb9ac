"""``cryptopulse`` command line: one sub-command per service plus the tools around them.

Settings come from ``CRYPTOPULSE_*`` variables; flags given here override them. Each service
package adds its own sub-commands through ``register(subparsers)`` in its ``cli`` module.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from collections.abc import Callable, Sequence

from services.common.errors import StartupError
from services.common.settings import KafkaSettings, SettingsError, describe, load, registered

SERVICE_CLI_MODULES = (
    "services.ingestor.cli",
    "services.processor.cli",
    "services.gateway.cli",
    "services.scenario.cli",
    "services.reference.cli",
    "services.supervisor",
)

Handler = Callable[[argparse.Namespace], int]


def add_kafka_flags(parser: argparse.ArgumentParser) -> None:
    """Flags every Kafka-using command shares (they override ``CRYPTOPULSE_KAFKA_BOOTSTRAP`` etc.)."""
    parser.add_argument("--kafka", dest="kafka_bootstrap", metavar="HOST:PORT[,...]",
                        help="external Kafka bootstrap servers (default: embedded broker)")
    parser.add_argument("--broker-port", dest="broker_port", type=int, metavar="PORT",
                        help="embedded broker port (default 19092)")
    parser.add_argument("--log-level", dest="log_level", help="DEBUG, INFO, WARNING or ERROR")


def kafka_settings(args: argparse.Namespace) -> KafkaSettings:
    return load(KafkaSettings, kafka_bootstrap=getattr(args, "kafka_bootstrap", None),
                broker_port=getattr(args, "broker_port", None), log_level=getattr(args, "log_level", None))


def _cmd_broker(args: argparse.Namespace) -> int:
    from services.common.broker import main_foreground

    kafka = kafka_settings(args)
    if not kafka.embedded:
        raise StartupError("CRYPTOPULSE_KAFKA_BOOTSTRAP is set: an external Kafka is in use, no broker to start")
    return main_foreground(kafka.broker_host, kafka.broker_port)


def _cmd_topics(args: argparse.Namespace) -> int:
    from services.common.kafka import create_topics, describe_topics, wait_for_kafka
    from services.common.topics import ALL_TOPICS

    kafka = kafka_settings(args)

    async def run() -> int:
        await wait_for_kafka(kafka.bootstrap, timeout=10)
        if args.action == "create":
            created = await create_topics(kafka.bootstrap, replication_factor=args.replication_factor)
            for topic in ALL_TOPICS:
                state = "created" if topic.name in created else "exists"
                print(f"{topic.name:32} {state}")
            return 0
        partitions = await describe_topics(kafka.bootstrap)
        print(f"{'topic':32} {'partitions':>10}  {'declared':>8}  cleanup   key")
        for topic in ALL_TOPICS:
            have = partitions.get(topic.name)
            shown = "missing" if have is None else str(have)
            print(f"{topic.name:32} {shown:>10}  {topic.partitions:>8}  {topic.cleanup_policy:8}  {topic.key}")
        return 0

    return asyncio.run(run())


def _cmd_settings(_args: argparse.Namespace) -> int:
    for cls in registered():
        print(f"# {cls.__name__}")
        for name, default, help_text in describe(cls):
            print(f"{name:40} default={default!r:16} {help_text}")
    return 0


def _cmd_metrics(args: argparse.Namespace) -> int:
    from pathlib import Path

    from services.common.metrics import all_metrics
    from services.common.metrics_doc import render

    text = render(all_metrics())
    if args.check is None:
        print(text, end="")
        return 0
    if Path(args.check).read_text() != text:
        print(f"{args.check} is out of date: run `cryptopulse metrics > {args.check}`", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cryptopulse", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    broker = sub.add_parser("broker", help="run the embedded Kafka broker (Tansu) in the foreground")
    add_kafka_flags(broker)
    broker.set_defaults(handler=_cmd_broker)

    topics = sub.add_parser("topics", help="create or list the topics of the registry")
    topics.add_argument("action", choices=("create", "list"))
    topics.add_argument("--replication-factor", type=int, default=1)
    add_kafka_flags(topics)
    topics.set_defaults(handler=_cmd_topics)

    settings = sub.add_parser("settings", help="list every CRYPTOPULSE_* setting with its default")
    settings.set_defaults(handler=_cmd_settings)

    metrics = sub.add_parser("metrics", help="print the metrics contract (markdown) of every service")
    metrics.add_argument("--check", metavar="FILE", help="fail if FILE differs from the contract")
    metrics.set_defaults(handler=_cmd_metrics)

    for module_name in SERVICE_CLI_MODULES:
        importlib.import_module(module_name).register(sub)
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
