"""Logging set-up shared by every service: one line per record, level from settings."""

from __future__ import annotations

import logging
import sys


def setup_logging(level: str = "INFO", service: str = "") -> None:
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(stream=sys.stderr, level=level.upper(), format=fmt, force=True)
    if service:
        logging.getLogger().name = service
    chosen = logging.getLevelName(level.upper())
    for noisy in ("aiokafka", "kafka", "faust", "mode", "websockets"):
        # Libraries stay at WARNING unless DEBUG is asked for explicitly.
        logging.getLogger(noisy).setLevel(chosen if chosen == logging.DEBUG else max(logging.WARNING, chosen))
