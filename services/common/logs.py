"""Logging set-up shared by every service: one line per record, level and format from settings.

``CRYPTOPULSE_LOG_FORMAT=json`` writes one JSON object per line (``ts``, ``level``, ``service``,
``logger``, ``message``, ``exc`` when there is a traceback) for log collectors in containers.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

import orjson

from services.common.settings import KafkaSettings, SettingsError, load

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record; never raises on odd arguments (``str()`` of what orjson cannot encode)."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def log_format() -> str:
    chosen = load(KafkaSettings).log_format.strip().lower()
    if chosen not in LOG_FORMATS:
        raise SettingsError(f"CRYPTOPULSE_LOG_FORMAT={chosen!r} is not one of {', '.join(LOG_FORMATS)}")
    return chosen


def setup_logging(level: str = "INFO", service: str = "") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service) if log_format() == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    if service:
        logging.getLogger().name = service
    chosen = logging.getLevelName(level.upper())
    for noisy in ("aiokafka", "kafka", "faust", "mode", "websockets"):
        # Libraries stay at WARNING unless DEBUG is asked for explicitly.
        logging.getLogger(noisy).setLevel(chosen if chosen == logging.DEBUG else max(logging.WARNING, chosen))
