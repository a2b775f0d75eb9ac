"""The backfill's progress line on a terminal (or a log line every few seconds when not a terminal)."""

from __future__ import annotations

import time
from typing import IO


class Progress:
    """One status line: rewritten in place on a terminal, printed every few seconds otherwise."""

    def __init__(self, out: IO[str], every: float = 5.0) -> None:
        self.out = out
        self.tty = out.isatty()
        self.every = every
        self.last = 0.0
        self.phase = ""
        self.done = 0
        self.total = 0
        self.requests = 0
        self.failed = 0
        self.started = time.monotonic()

    def start(self, phase: str, total: int) -> None:
        self.phase, self.done, self.total = phase, 0, total
        self.show(force=True)

    def step(self, requests: int = 0) -> None:
        self.done += 1
        self.requests += requests
        self.show()

    def line(self) -> str:
        pct = 100.0 * self.done / self.total if self.total else 100.0
        return (f"backfill {self.phase}: {self.done}/{self.total} ({pct:.0f}%), {self.requests} requests, "
                f"{self.failed} failed, {time.monotonic() - self.started:.0f} s")

    def show(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.tty:
            self.out.write("\r" + self.line().ljust(100))
            if self.done >= self.total:
                self.out.write("\n")
        elif force or now - self.last >= self.every or self.done >= self.total:
            self.out.write(self.line() + "\n")
        else:
            return
        self.last = now
        self.out.flush()
