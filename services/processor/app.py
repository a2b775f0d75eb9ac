"""The Faust app of the processor: configuration, the worker context (``context.py``) and the runner.

The agents (``agents.py``) are thin shells: they take batches of raw messages and hand them to the
pure topology (``topology.py``), which routes them through the stages (``stage_*.py``) and says what
to publish where; Faust provides the consumer group, the changelog-backed tables that make the
stages restart-safe, and the producer.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import tempfile
import threading
from typing import cast

import faust

from services.common import topics
from services.common.kafka import faust_broker_settings
from services.common.settings import KafkaSettings
from services.processor.agents import attach
from services.processor.context import Context
from services.processor.reference import bundled_universe
from services.processor.settings import ProcessorSettings
from services.processor.signals import SignalEngine
from services.processor.stage_assets import AssetStage
from services.processor.stage_liquidations import LiquidationStage
from services.processor.stage_sectors import SectorStage
from services.processor.validate import Bounds

log = logging.getLogger("cryptopulse.processor")


def build_app(settings: ProcessorSettings, kafka: KafkaSettings, datadir: str) -> tuple[faust.App, Context]:
    app = faust.App(
        settings.processor_app_id,
        **faust_broker_settings(kafka),
        datadir=datadir,
        store="memory://",
        table_standby_replicas=0,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        web_enabled=settings.processor_web_port > 0,
        web_port=settings.processor_web_port or 6066,
        web_host="127.0.0.1",
        stream_buffer_maxsize=max(4096, settings.processor_batch_size * 2),
        producer_linger=0.005,
        broker_commit_interval=1.0,
        stream_wait_empty=False,
    )
    universe = bundled_universe()
    sectors = SectorStage(universe, settings.processor_emit_interval,
                          candle_interval=settings.processor_candle_emit_interval)
    sectors.configure(settings.processor_close_lateness_ms, settings.processor_idle_source_seconds,
                      range(topics.TRADE_BARS.partitions))
    ctx = Context(settings=settings, kafka=kafka, universe=universe,
                  assets=AssetStage(universe, settings.processor_emit_interval, bounds_of(settings)),
                  liquidations=LiquidationStage(settings.processor_emit_interval),
                  sectors=sectors,
                  signals=SignalEngine(settings))
    attach(app, ctx)
    return app, ctx


def bounds_of(settings: ProcessorSettings) -> Bounds:
    return Bounds(settings.processor_max_clock_skew_ms, settings.processor_max_ts_ahead_ms,
                  settings.processor_max_notional_usd, settings.processor_max_price_usd)


STOP_DEADLINE_S = 6.0


class ProcessorWorker(faust.Worker):
    """A Faust worker whose SIGTERM/SIGINT stop is bounded: flush the producer, commit, exit.

    Faust's own shutdown can wait forever on the producer buffer with this broker; state lives in
    the changelogs and every aggregate dedupes, so ending the process after a flush is safe.
    """

    def _schedule_shutdown(self, signal: signal.Signals) -> None:
        if self._signal_stop_time:
            return
        self._signal_stop_time = self.loop.time()
        watchdog = threading.Timer(STOP_DEADLINE_S + 1.5, os._exit, args=(0,))
        watchdog.daemon = True
        watchdog.start()
        asyncio.ensure_future(self._bounded_stop(signal), loop=self.loop)

    async def _bounded_stop(self, signal: signal.Signals) -> None:
        log.info("signal %s: flushing and stopping", signal.name)
        app = cast(faust.App, self.app)
        try:
            await asyncio.wait_for(app.producer.flush(), STOP_DEADLINE_S / 2)
            await asyncio.wait_for(app.consumer.commit(), STOP_DEADLINE_S / 2)
        except Exception as exc:  # a failed commit only means redelivery, which dedupe absorbs
            log.warning("stop: flush/commit incomplete (%s)", exc)
        logging.shutdown()
        os._exit(0)


def run_worker(settings: ProcessorSettings, kafka: KafkaSettings) -> int:
    """Run one worker until SIGTERM/SIGINT; returns the exit code."""
    asyncio.set_event_loop(asyncio.new_event_loop())
    datadir = settings.processor_datadir or tempfile.mkdtemp(prefix="cryptopulse-processor-")
    try:
        app, _ctx = build_app(settings, kafka, datadir)
        worker = ProcessorWorker(app, loglevel=kafka.log_level.lower(), quiet=True, redirect_stdouts=False,
                              override_logging=False, console_port=0)
        try:
            worker.execute_from_commandline()
        except SystemExit as exc:
            return int(exc.code or 0)
        return 0
    finally:
        if not settings.processor_datadir:
            shutil.rmtree(datadir, ignore_errors=True)
