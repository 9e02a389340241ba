"""Beside the main loop, once a second: consumer lag, an engine ping, the monitor's tick and, every
stats interval, the pipeline-metric document. Never blocks the main loop.

The documents are written by a separate task, so an engine outage does not stop the ticking; what
piles up meanwhile is bounded (oldest dropped first, and counted).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime

from shipper.config import ShipperSettings
from shipper.engines.base import SearchEngine
from shipper.log import get_logger
from shipper.monitor import Doc, Monitor, PipelineStatus
from shipper.pipeline import Pipeline
from shipper.pipeline_doc import pipeline_doc
from shipper.source import KafkaSource
from shipper.stats import Stats

log = get_logger("shipper")

MAX_QUEUED_DOCS = 10_000  # monitor and pipeline-metric documents waiting for an unavailable engine
FLUSH_ON_STOP_SHARE = 0.25  # of the shutdown bound: writing the last monitor documents at shutdown
PING_TIMEOUT_S = 2.0


class Background:
    def __init__(self, *, settings: ShipperSettings, stats: Stats, source: Callable[[], KafkaSource],
                 engine: SearchEngine, monitor: Monitor, pipeline: Pipeline, host: str,
                 consuming: Callable[[], bool]) -> None:
        self.settings = settings
        self.stats = stats
        self.source = source  # the current one: a failed Kafka start replaces it
        self.engine = engine
        self.monitor = monitor
        self.pipeline = pipeline
        self.host = host
        self.consuming = consuming
        self.engine_ok = True

    def pipeline_status(self) -> PipelineStatus:
        lag = dict(self.stats.lag)
        return PipelineStatus(caught_up=self.consuming() and bool(lag) and not any(lag.values()),
                              lag_total=sum(lag.values()), lag_by_partition=lag,
                              dead_lettered_total=self.stats.dead_lettered, consumed_total=self.stats.consumed,
                              indexed_total=self.stats.indexed,
                              stream_overflow_total=self.pipeline.settings.streams.overflowed)

    async def run(self, stopping: asyncio.Event) -> None:
        last: dict[str, float] = {}
        last_stats = time.monotonic()
        queued: list[Doc] = []
        writer: asyncio.Task[None] | None = None
        try:
            while not stopping.is_set():
                try:
                    self.stats.lag = await self.source().lag()
                    try:
                        self.engine_ok = await asyncio.wait_for(self.engine.ping(), PING_TIMEOUT_S)
                    except TimeoutError:
                        self.engine_ok = False
                    queued += await self.monitor.tick(time.time(), self.pipeline_status())
                    if time.monotonic() - last_stats >= self.settings.stats_interval_s:
                        window = time.monotonic() - last_stats
                        queued.append(pipeline_doc(self.stats, last, host=self.host,
                                                   namespace=self.settings.namespace,
                                                   now=datetime.now(UTC), window_s=window))
                        last = self.stats.snapshot()
                        last_stats = time.monotonic()
                    if len(queued) > MAX_QUEUED_DOCS:
                        self.stats.item_errors["background_doc_dropped"] += len(queued) - MAX_QUEUED_DOCS
                        del queued[:-MAX_QUEUED_DOCS]
                    if queued and (writer is None or writer.done()):
                        writer = asyncio.create_task(self.pipeline.write_docs(queued))
                        queued = []
                except Exception:
                    log.exception("background task failed; continuing")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), 1.0)
        finally:
            # alerts and transitions made just before SIGTERM get a short, bounded chance to land
            pending = [writer] if writer is not None and not writer.done() else []
            if queued:
                pending.append(asyncio.create_task(self.pipeline.write_docs(queued)))
            if pending:
                _, late = await asyncio.wait(pending, timeout=self.settings.shutdown_timeout_s * FLUSH_ON_STOP_SHARE)
                for task in late:
                    task.cancel()
