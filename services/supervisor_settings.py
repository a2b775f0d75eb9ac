"""Settings of ``cryptopulse up`` itself (the supervisor)."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.settings import register, setting


@register
@dataclass(frozen=True)
class SupervisorSettings:
    stop_timeout: float = setting(8.0, "Seconds each child gets after SIGTERM before it is killed.")
    data_dir: str = setting("~/.local/share/cryptopulse", "Data directory of `up` (the live journal lives in DATA_DIR/journal).")
    journal: str = setting(
        "auto", "Live raw-frame journal: auto = on with the embedded broker, off with external Kafka (Kafka is the log); on; off.")
