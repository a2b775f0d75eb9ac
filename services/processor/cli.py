"""Command-line entry of the processor: ``cryptopulse process`` and ``cryptopulse assets load``."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path
from typing import Any

from services.common.kafka import wait_for_kafka
from services.common.logs import setup_logging
from services.common.metrics import serve_metrics
from services.common.settings import load
from services.processor.settings import ProcessorSettings

log = logging.getLogger("cryptopulse.processor")


def _cmd_process(args: argparse.Namespace) -> int:
    from services.cli import kafka_settings
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


def _cmd_assets(args: argparse.Namespace) -> int:
    from services.cli import kafka_settings
    from services.processor.reference import BUNDLED_ASSETS
    from services.processor.reference_io import load_assets

    kafka = kafka_settings(args)
    setup_logging(kafka.log_level, "assets")
    path = Path(args.file) if args.file else BUNDLED_ASSETS

    async def run() -> int:
        await wait_for_kafka(kafka)
        return await load_assets(kafka, path)

    count = asyncio.run(run())
    print(f"published {count} assets from {path}")
    return 0


def register(sub: Any) -> None:
    """Add this service's sub-commands to the `cryptopulse` parser."""
    from services.cli import add_kafka_flags

    process = sub.add_parser("process", help="run a stream-processor worker (faust)")
    process.add_argument("--metrics-port", type=int, help="metrics port (CRYPTOPULSE_PROCESSOR_METRICS_PORT)")
    process.add_argument("--emit-interval", type=float,
                         help="conflation interval in seconds (CRYPTOPULSE_PROCESSOR_EMIT_INTERVAL)")
    add_kafka_flags(process)
    process.set_defaults(handler=_cmd_process)

    assets = sub.add_parser("assets", help="reference data: publish the asset universe to its topic")
    assets.add_argument("action", choices=("load",))
    assets.add_argument("file", nargs="?", help="assets JSON file (default: the bundled universe)")
    add_kafka_flags(assets)
    assets.set_defaults(handler=_cmd_assets)
