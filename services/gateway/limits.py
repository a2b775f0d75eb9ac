"""Process-wide limits of the gateway, without I/O: connection caps from the open-file limit, and a
throttle for log lines an attacker can trigger at will.
"""

from __future__ import annotations

from dataclasses import dataclass, field

RESERVED_FDS = 64  # Kafka connections, the metrics server, log files, /healthz and /readyz probes


@dataclass(frozen=True)
class ConnectionCaps:
    """``websockets``: open websocket clients beyond which a client is refused with 4002;
    ``sockets``: accepted TCP connections (handshaking ones included) beyond which a new one is
    dropped at once, so the process never runs out of file descriptors."""

    websockets: int
    sockets: int


def connection_caps(open_files: int, configured: int) -> ConnectionCaps:
    """Caps under the soft open-file limit with headroom: 10 % (at least ``RESERVED_FDS``) is kept
    for the process itself, and half of the rest of the margin for connections still handshaking.
    ``configured`` (0 = derive) can only lower the websocket cap."""
    headroom = max(RESERVED_FDS, open_files // 10)
    sockets = max(1, open_files - headroom)
    derived = max(1, sockets - max(RESERVED_FDS // 2, headroom // 2))
    websockets = min(configured, derived) if configured > 0 else derived
    return ConnectionCaps(websockets, sockets)


@dataclass
class LogThrottle:
    """At most one log line per ``interval`` seconds per key; the suppressed lines are counted and
    reported with the next one."""

    interval: float
    _last: dict[str, float] = field(default_factory=dict)
    _suppressed: dict[str, int] = field(default_factory=dict)

    def allow(self, key: str, now: float) -> int | None:
        """None: stay silent; otherwise log now, mentioning the returned number of lines suppressed."""
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._suppressed.pop(key, 0)
