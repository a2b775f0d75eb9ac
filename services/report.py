"""``cryptopulse report``: the scenario's report read from a running gateway.

It joins two services (the scenario's figures, the gateway's address), so it lives above both,
beside the command line, and neither service imports the other.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from services.common.settings import load
from services.gateway.settings import GatewaySettings


def _cmd_report(args: argparse.Namespace) -> int:
    from services.scenario.report import report

    try:
        url = args.url or load(GatewaySettings).local_ws_url
        return asyncio.run(report(url, json_output=args.json, timeout=args.timeout, token=args.token))
    except KeyboardInterrupt:
        return 130


def register(sub: Any) -> None:
    """Add the scenario's sub-commands (``report``) to the `cryptopulse` parser."""
    parser = sub.add_parser("report", help="compare the 2025-01-27 article's figures with a running stack's live values")
    parser.add_argument("--url", help="gateway websocket URL (default ws://127.0.0.1:$CRYPTOPULSE_GATEWAY_PORT/ws)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds to wait for the gateway's data")
    parser.add_argument("--token", help="JWT when the gateway requires one")
    parser.set_defaults(handler=_cmd_report)
