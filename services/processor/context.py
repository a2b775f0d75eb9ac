"""What one processor worker holds next to its Faust tables (typed; no Faust import), shared by the
topology (``topology``), the Faust wiring (``agents``), the reference readers (``reference_io``) and
the app (``app``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from services.common.settings import KafkaSettings
from services.processor.reference import Universe
from services.processor.settings import ProcessorSettings
from services.processor.signals import SignalEngine
from services.processor.stage_assets import AssetStage
from services.processor.stage_liquidations import LiquidationStage
from services.processor.stage_sectors import SectorStage

DeadLetters = Iterable[tuple[bytes | None, str]]


def _no_dead_letters(stream: str, items: DeadLetters) -> None:
    raise RuntimeError(f"dead letters of {stream} before the processor's wiring is attached")


@dataclass
class Context:
    """The pure stages, the universe and the readiness events of one worker; ``send_deadletters``
    is set by the Faust wiring (the only part that can produce)."""

    settings: ProcessorSettings
    kafka: KafkaSettings
    universe: Universe
    assets: AssetStage
    liquidations: LiquidationStage
    sectors: SectorStage
    signals: SignalEngine
    reference_ready: asyncio.Event = field(default_factory=asyncio.Event)
    history_ready: asyncio.Event = field(default_factory=asyncio.Event)
    send_deadletters: Callable[[str, DeadLetters], None] = _no_dead_letters
    universe_hooks: list[Callable[[], None]] = field(default_factory=list)


def internal_topic_name(settings: ProcessorSettings, what: str) -> str:
    """Names of the processor's own internal topics (prefixed by the app id, like Faust's changelogs)."""
    return f"{settings.processor_app_id}-{what}"
