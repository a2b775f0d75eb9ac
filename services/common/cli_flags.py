"""Command-line flags every Kafka-using command shares; each service's CLI adds them to its parsers.

They live in ``common`` so that a service's CLI needs nothing from the top-level command line.
"""

from __future__ import annotations

import argparse
from typing import Any

from services.common.settings import KafkaSettings, load


def add_kafka_flags(parser: argparse.ArgumentParser) -> None:
    """Flags every Kafka-using command shares (they override ``CRYPTOPULSE_KAFKA_BOOTSTRAP`` etc.)."""
    parser.add_argument("--kafka", dest="kafka_bootstrap", metavar="HOST:PORT[,...]",
                        help="external Kafka bootstrap servers (default: embedded broker)")
    parser.add_argument("--broker-port", dest="broker_port", type=int, metavar="PORT",
                        help="embedded broker port (default 19092)")
    parser.add_argument("--log-level", dest="log_level", help="DEBUG, INFO, WARNING or ERROR")


def kafka_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The KafkaSettings fields given as flags (None = not given)."""
    return {name: getattr(args, name, None) for name in ("kafka_bootstrap", "broker_port", "log_level")}


def kafka_settings(args: argparse.Namespace) -> KafkaSettings:
    return load(KafkaSettings, **kafka_flags(args))
