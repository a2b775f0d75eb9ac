"""Settings of ``cryptopulse up`` itself (the supervisor)."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.settings import register, setting


@register
@dataclass(frozen=True)
class SupervisorSettings:
    stop_timeout: float = setting(8.0, "Seconds each child gets after SIGTERM before it is killed.")
