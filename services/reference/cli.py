"""``cryptopulse assets load|refresh|status``: the reference data on its topic."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from services.common.kafka import wait_for_kafka
from services.common.logs import setup_logging
from services.common.settings import load
from services.reference.settings import ReferenceSettings


def describe_status(status: dict[str, Any] | None) -> str:
    """One line on the supplies in force (``report``/``watch`` style)."""
    if not status:
        return "reference data: no status published yet"
    line = f"reference data: {status.get('assets', '?')} assets from {status.get('source', '?')}, as of {status.get('as_of', '?')}"
    if status.get("coverage_pct") is not None:
        line += f", {status['coverage_pct']:.1f}% of the provider's total market cap"
    if status.get("last_error"):
        line += f"; last refresh failed: {status['last_error']}"
    return line


def _cmd_assets(args: argparse.Namespace) -> int:
    from services.common.cli_flags import kafka_settings
    from services.reference import service

    kafka = kafka_settings(args)
    setup_logging(kafka.log_level, "assets")
    settings = load(ReferenceSettings, assets_top_n=args.top, assets_provider_url=args.provider_url,
                    assets_category_map=args.category_map)

    async def run() -> int:
        await wait_for_kafka(kafka)
        if args.action == "load":
            path = Path(args.file) if args.file else service.BUNDLED_ASSETS
            print(f"published {await service.load_file(kafka, path)} assets from {path}")
        elif args.action == "refresh":
            plan = await service.refresh(kafka, settings)
            print(f"refreshed from {settings.assets_provider}: {service.describe(plan)}")
        print(describe_status(await service.assets_status(kafka)))
        return 0

    return asyncio.run(run())


def register(sub: Any) -> None:
    from services.common.cli_flags import add_kafka_flags

    assets = sub.add_parser("assets", help="reference data: publish the bundled universe, refresh it from the "
                                           "provider, or show where it stands")
    assets.add_argument("action", choices=("load", "refresh", "status"))
    assets.add_argument("file", nargs="?", help="load: assets JSON file (default: the bundled universe)")
    assets.add_argument("--top", type=int, help="refresh: assets by market cap (CRYPTOPULSE_ASSETS_TOP_N)")
    assets.add_argument("--provider-url", help="refresh: provider API root (CRYPTOPULSE_ASSETS_PROVIDER_URL)")
    assets.add_argument("--category-map", help="refresh: sector/category map file (CRYPTOPULSE_ASSETS_CATEGORY_MAP)")
    add_kafka_flags(assets)
    assets.set_defaults(handler=_cmd_assets)
