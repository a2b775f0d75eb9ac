"""Raw exchange frames as received: the unit of recording, replay and the scenario source.

A recording is JSONL, one object per frame: ``{"venue": ..., "ts_recv": <epoch ms>, "frame": <text>}``
(optionally zstd-compressed). ``frame`` is the websocket text frame exactly as the venue sent it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True, frozen=True)
class RawFrame:
    venue: str
    frame: str
    ts_recv: int
