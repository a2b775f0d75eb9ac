"""Command-line entry of the processor: ``cryptopulse process`` (``assets`` lives in services.reference)."""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from services.common.kafka import wait_for_kafka
from services.common.logs import setup_logging
from services.common.metrics import serve_metrics
from services.common.settings import load
from services.processor.settings import ProcessorSettings

log = logging.getLogger("cryptopulse.processor")


def _cmd_process(args: argparse.Namespace) -> int:
    from services.common.cli_flags import kafka_settings
    from services.processor.app import run_worker

    kafka = kafka_settings(args)
    settings = load(ProcessorSettings, processor_metrics_port=args.metrics_port,
                    processor_emit_interval=args.emit_interval)
    setup_logging(kafka.log_level, "processor")
    asyncio.run(wait_for_kafka(kafka))
    serve_metrics(settings.processor_metrics_port, service="processor")
    code = run_worker(settings, kafka)
    log.info("processor stopped")
    return code


def register(sub: Any) -> None:
    """Add this service's sub-commands to the `cryptopulse` parser."""
    from services.common.cli_flags import add_kafka_flags

    process = sub.add_parser("process", help="run a stream-processor worker (faust)")
    process.add_argument("--metrics-port", type=int, help="metrics port (CRYPTOPULSE_PROCESSOR_METRICS_PORT)")
    process.add_argument("--emit-interval", type=float,
                         help="conflation interval in seconds (CRYPTOPULSE_PROCESSOR_EMIT_INTERVAL)")
    add_kafka_flags(process)
    process.set_defaults(handler=_cmd_process)

