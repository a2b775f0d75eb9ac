"""Command-line entry of the ingestor: ``cryptopulse ingest``, ``replay`` and ``record``.

Only the parsers live here: every ``cryptopulse`` process builds them, and importing the pipeline
would declare the ingestor's metrics in the processor's and gateway's /metrics too. The commands
themselves are imported when one runs (:mod:`services.ingestor.commands`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def _lazy(name: str) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        from services.ingestor import commands

        result: int = getattr(commands, name)(args)
        return result

    return handler


def _venues_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--venues", nargs="+", metavar="VENUE",
                        help="venue ids (CRYPTOPULSE_INGEST_VENUES; default: every adapter)")


def _ingest_flags(parser: argparse.ArgumentParser, *, speed_only: bool = False) -> None:
    from services.common.cli_flags import add_kafka_flags

    if not speed_only:
        parser.add_argument("--source", help="scenario | replay:PATH | live (CRYPTOPULSE_INGEST_SOURCE)")
    parser.add_argument("--speed", help="replay speed: 1 (real time), N (N x faster) or max")
    if not speed_only:
        parser.add_argument("--density", type=float,
                            help="scenario trades per asset per minute per venue (CRYPTOPULSE_SCENARIO_DENSITY)")
    parser.add_argument("--hold", action=argparse.BooleanOptionalAction, default=None,
                        help="after a finite source ends, keep serving metrics (CRYPTOPULSE_HOLD)")
    parser.add_argument("--metrics-port", type=int, help="metrics port (CRYPTOPULSE_INGESTOR_METRICS_PORT)")
    _venues_flag(parser)
    add_kafka_flags(parser)


def register(sub: Any) -> None:
    """Add this service's sub-commands to the `cryptopulse` parser."""
    ingest_parser = sub.add_parser("ingest", help="ingest exchange frames (scenario, replay or live) into Kafka")
    _ingest_flags(ingest_parser)
    ingest_parser.set_defaults(handler=_lazy("_cmd_ingest"))

    replay = sub.add_parser("replay", help="ingest a recording: same as ingest --source replay:FILE")
    replay.add_argument("file", help="JSONL recording of raw frames (optionally .zst)")
    _ingest_flags(replay, speed_only=True)
    replay.set_defaults(handler=_lazy("_cmd_replay"))

    rec = sub.add_parser("record", help="record raw frames from the live venues to JSONL (.zst: compressed)")
    rec.add_argument("--out", required=True, help="output file (FILE.jsonl or FILE.jsonl.zst)")
    rec.add_argument("--symbols", nargs="+", help="venue-native symbols (default: every listed instrument)")
    rec.add_argument("--seconds", type=float, help="stop after this many seconds")
    rec.add_argument("--frames", type=int, help="stop after this many frames")
    _venues_flag(rec)
    from services.common.cli_flags import add_kafka_flags

    add_kafka_flags(rec)
    rec.set_defaults(handler=_lazy("_cmd_record"))

