"""What one processor worker holds in memory next to its Faust tables, and its internal topic names.

Apart from the app (``app.py``) so that the agents and the reference readers can take it without
importing the app that attaches them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from services.common.settings import KafkaSettings
from services.processor.reference import Universe
from services.processor.settings import ProcessorSettings
from services.processor.signals import SignalEngine
from services.processor.stage_assets import AssetStage
from services.processor.stage_liquidations import LiquidationStage
from services.processor.stage_sectors import SectorStage


@dataclass
class Context:
    """Everything one worker holds in memory next to its Faust tables."""

    settings: ProcessorSettings
    kafka: KafkaSettings
    universe: Universe
    assets: AssetStage
    liquidations: LiquidationStage
    sectors: SectorStage
    signals: SignalEngine
    reference_ready: asyncio.Event = field(default_factory=asyncio.Event)
    history_ready: asyncio.Event = field(default_factory=asyncio.Event)
    extra: dict[str, Any] = field(default_factory=dict)


def internal_topic_name(settings: ProcessorSettings, what: str) -> str:
    """Names of the processor's own internal topics (prefixed by the app id, like Faust's changelogs)."""
    return f"{settings.processor_app_id}-{what}"
