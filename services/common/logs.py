"""Logging set-up shared by every service: one line per record, level from settings."""

from __future__ import annotations

import logging
import sys


def setup_logging(level: str = "INFO", service: str = "") -> None:
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(stream=sys.stderr, level=level.upper(), format=fmt, force=True)
    if service:
        logging.getLogger().name = service
    for noisy in ("aiokafka", "kafka", "faust", "mode", "websockets"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level.upper())))
