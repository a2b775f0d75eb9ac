"""``cryptopulse backfill``: warm start from the venues' REST klines (docs/live.md)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from services.common.kafka import wait_for_kafka
from services.common.logs import setup_logging
from services.common.settings import load
from services.ingestor.backfill.settings import BackfillSettings


def _cmd_backfill(args: argparse.Namespace) -> int:
    from services.common.cli_flags import kafka_settings
    from services.ingestor.backfill.run import backfill

    kafka = kafka_settings(args)
    setup_logging(kafka.log_level, "backfill")
    settings = load(BackfillSettings, backfill_venues=tuple(args.venues) if args.venues else None,
                    backfill_minutes=args.minutes, backfill_hours=args.hours, backfill_days=args.days)

    async def run() -> int:
        await wait_for_kafka(kafka)
        summary = await backfill(kafka, settings, out=sys.stderr)
        print(summary.line())
        return 1 if summary.failed and not summary.bars else 0

    return asyncio.run(run())


def register(sub: Any) -> None:
    from services.common.cli_flags import add_kafka_flags

    parser = sub.add_parser("backfill", help="warm start: publish the venues' REST klines as history candles and "
                                             "1-minute bars (resumable)")
    parser.add_argument("--venues", nargs="+", help="venues to backfill (CRYPTOPULSE_BACKFILL_VENUES)")
    parser.add_argument("--minutes", type=int, help="1-minute klines before now (CRYPTOPULSE_BACKFILL_MINUTES)")
    parser.add_argument("--hours", type=int, help="hourly history candles (CRYPTOPULSE_BACKFILL_HOURS)")
    parser.add_argument("--days", type=int, help="daily history candles (CRYPTOPULSE_BACKFILL_DAYS)")
    add_kafka_flags(parser)
    parser.set_defaults(handler=_cmd_backfill)
