"""Command-line entry of the gateway: ``cryptopulse gateway`` and ``cryptopulse watch``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Coroutine
from typing import Any

from services.common.kafka import wait_for_kafka
from services.common.logs import setup_logging
from services.common.metrics import serve_metrics
from services.common.procs import stop_event
from services.common.settings import load
from services.gateway.settings import GatewaySettings

log = logging.getLogger("cryptopulse.gateway")


def _cmd_gateway(args: argparse.Namespace) -> int:
    from services.common.cli_flags import kafka_settings
    from services.gateway.server import Gateway

    kafka = kafka_settings(args)
    settings = load(GatewaySettings, gateway_host=args.host, gateway_port=args.port,
                    gateway_metrics_port=args.metrics_port)
    setup_logging(kafka.log_level, "gateway")

    async def run() -> int:
        await wait_for_kafka(kafka)
        serve_metrics(settings.gateway_metrics_port, service="gateway")
        await Gateway(settings, kafka).run(stop_event())
        log.info("gateway stopped")
        return 0

    return asyncio.run(run())


WATCH_CLOSE_S = 5.0     # how long an interrupted watch waits for its connection to close


async def until_stopped(work: Coroutine[Any, Any, int]) -> int:
    """``work``'s result, or 0 once SIGINT or SIGTERM arrives: the signal is taken by the event loop
    and cancels ``work`` (then waits at most ``WATCH_CLOSE_S``), rather than being raised as a
    KeyboardInterrupt wherever the program happens to be (an interrupt that landed inside the
    connection's machinery was seen to leave ``watch`` hanging after Ctrl-C)."""
    stop = stop_event()
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if task.done():
        return task.result()
    task.cancel()
    await asyncio.wait({task}, timeout=WATCH_CLOSE_S)
    return 0


def _cmd_watch(args: argparse.Namespace) -> int:
    from services.client import ClientClosed
    from services.gateway.client import watch

    try:
        url = args.url or load(GatewaySettings).local_ws_url
        return asyncio.run(until_stopped(watch(url, args.channels, raw=args.json, token=args.token)))
    except KeyboardInterrupt:
        return 0
    except ClientClosed as exc:
        print(f"cryptopulse watch: {exc}", file=sys.stderr)
        return 1


def register(sub: Any) -> None:
    """Add this service's sub-commands to the `cryptopulse` parser."""
    from services.common.cli_flags import add_kafka_flags

    gateway = sub.add_parser("gateway", help="run the websocket gateway (reads the derived topics)")
    gateway.add_argument("--host", help="listen host (CRYPTOPULSE_GATEWAY_HOST)")
    gateway.add_argument("--port", type=int, help="listen port (CRYPTOPULSE_GATEWAY_PORT)")
    gateway.add_argument("--metrics-port", type=int, help="metrics port (CRYPTOPULSE_GATEWAY_METRICS_PORT)")
    add_kafka_flags(gateway)
    gateway.set_defaults(handler=_cmd_gateway)

    watch = sub.add_parser("watch", help="print live updates of gateway channels in the terminal")
    watch.add_argument("channels", nargs="+", metavar="CHANNEL", help="e.g. sector:ai 'liquidations:24h:*'")
    watch.add_argument("--url", help="gateway websocket URL (default ws://127.0.0.1:$CRYPTOPULSE_GATEWAY_PORT/ws)")
    watch.add_argument("--token", help="JWT when the gateway requires one")
    watch.add_argument("--json", action="store_true", help="print the raw JSON messages")
    watch.set_defaults(handler=_cmd_watch)
