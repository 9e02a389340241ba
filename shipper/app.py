"""`shipper run`: wires the stages together and runs until SIGTERM.

Start-up waits for the engine and installs the templates (idempotent); then the loop fetches
a batch, hands it to its own task (transform -> index -> dead-letter -> commit the finished
prefix) and fetches the next one while earlier bulks are still in flight, up to
max_batches_in_flight batches (which bounds memory and, while the engine is down, stops
consumption: Kafka is the buffer). The monitor ticks beside it. SIGTERM stops fetching, lets
the batches in progress finish and commit, and exits within the configured bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import signal
import socket
import time
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from collector.contract.ecs import ECS_VERSION
from collector.contract.promtext import render
from collector.contract.streams import DATASET_PIPELINE, sanitize_namespace
from shipper.config import ShipperSettings
from shipper.engines.base import EngineUnavailable, SearchEngine
from shipper.enrich import EnrichContext
from shipper.log import get_logger
from shipper.monitor import Doc, Monitor, NullMonitor, PipelineStatus
from shipper.ops import OpsServer
from shipper.pipeline import Pipeline
from shipper.setup import wait_for_engine
from shipper.sink import BulkSink
from shipper.source import KafkaSource
from shipper.stats import Stats

log = get_logger("shipper")

MAX_QUEUED_DOCS = 10_000  # monitor and pipeline-metric documents waiting for an unavailable engine
FLUSH_ON_STOP_S = 2.0  # bound on writing the last monitor documents at shutdown


def build_monitor(settings: ShipperSettings) -> Monitor:
    """The health engineer's monitor (`shipper.health.build_monitor`) when it exists, else NullMonitor."""
    build = getattr(importlib.import_module("shipper.health"), "build_monitor", None)
    if build is None:
        return NullMonitor()
    monitor: Monitor = build(settings)
    return monitor


class Shipper:
    def __init__(self, settings: ShipperSettings) -> None:
        self.settings = settings
        self.stats = Stats()
        self.stopping = asyncio.Event()
        self.source = KafkaSource(settings)
        self.monitor = build_monitor(settings)
        self.host = socket.gethostname()
        self.engine: SearchEngine | None = None
        self.sink: BulkSink | None = None
        self.consuming = False
        self.failed = False
        self.engine_ok = False
        self.ops = OpsServer(settings.http_host, settings.http_port, self.metrics_text, self.ready, self.detail)
        self.producer = self._new_producer()

    def ready(self) -> bool:
        return self.consuming and self.engine_ok

    def metrics_text(self) -> str:
        return render([*self.stats.prometheus(self.ready()), *self.monitor.metrics()])

    def detail(self) -> dict[str, object]:
        return {"service": "elk-shipper", "consuming": self.consuming,
                "engine": self.engine.name if self.engine else None,
                "engine_available": bool(self.sink and self.sink.available),
                "consumed": self.stats.consumed, "indexed": self.stats.indexed,
                "dead_lettered": self.stats.dead_lettered,
                "lag": sum(self.stats.lag.values())}

    async def _publish_dead(self, entries: list[tuple[bytes | None, bytes]]) -> None:
        """Until the broker has them all: the batch is not committed before its dead letters are durable."""
        delay = self.settings.retry_initial_s
        while True:
            try:
                futures = [await self.producer.send(self.settings.dead_letter_topic, value, key=key)
                           for key, value in entries]
                await asyncio.gather(*futures)
                return
            except KafkaError as exc:
                log.warning("dead-letter topic unavailable; retrying", error=repr(exc), retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(self.settings.retry_max_s, delay * 2)

    async def _waiting(self, seconds: float) -> None:
        log.warning("engine unavailable; holding the batch and retrying", retry_in_s=round(seconds, 2))
        await asyncio.sleep(seconds)

    def pipeline_status(self) -> PipelineStatus:
        lag = dict(self.stats.lag)
        return PipelineStatus(caught_up=self.consuming and bool(lag) and not any(lag.values()),
                              lag_total=sum(lag.values()), lag_by_partition=lag,
                              dead_lettered_total=self.stats.dead_lettered, consumed_total=self.stats.consumed,
                              indexed_total=self.stats.indexed)

    def pipeline_doc(self, now: datetime, window_s: float, last: dict[str, float]) -> tuple[str, dict[str, Any]]:
        """The shipper's own metrics over the last interval; `last` is the stats snapshot at its start."""
        ns = sanitize_namespace(self.settings.namespace)
        current = self.stats.snapshot()
        delta = {k: v - last.get(k, 0) for k, v in current.items()}
        doc = {
            "@timestamp": now.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "ecs": {"version": ECS_VERSION},
            "event": {"kind": "metric", "dataset": DATASET_PIPELINE},
            "service": {"name": "elk-shipper", "node": {"name": self.host}},
            "shipper": {
                "consumed": int(delta["consumed"]),
                "indexed": int(delta["indexed"]),
                "dead_lettered": int(delta["dead_lettered"]),
                "retried": int(delta["retried"]),
                "lag": sum(self.stats.lag.values()),
                "records_per_s": round(delta["indexed"] / window_s, 2),
                "bulk_latency_ms": round(1000 * delta["bulk_sum_s"] / delta["bulk_count"], 2)
                if delta["bulk_count"] else 0.0,
            },
            "data_stream": {"type": "metrics", "dataset": DATASET_PIPELINE, "namespace": ns},
        }
        return f"{self.host}-{now.timestamp():.0f}", doc

    async def _background(self, pipeline: Pipeline) -> None:
        """Lag, engine ping, monitor ticks (once a second) and pipeline metrics; never blocks the main loop.

        Their documents are written by a separate task, so an engine outage does not stop the
        ticking; what piles up meanwhile is bounded (oldest dropped first, and counted).
        """
        last: dict[str, float] = {}
        last_stats = time.monotonic()
        queued: list[Doc] = []
        writer: asyncio.Task[None] | None = None
        try:
            while not self.stopping.is_set():
                try:
                    self.stats.lag = await self.source.lag()
                    if self.engine is not None:
                        try:
                            self.engine_ok = await asyncio.wait_for(self.engine.ping(), 2.0)
                        except TimeoutError:
                            self.engine_ok = False
                    queued += await self.monitor.tick(time.time(), self.pipeline_status())
                    if time.monotonic() - last_stats >= self.settings.stats_interval_s:
                        window = time.monotonic() - last_stats
                        queued.append(self.pipeline_doc(datetime.now(UTC), window, last))
                        last = self.stats.snapshot()
                        last_stats = time.monotonic()
                    if len(queued) > MAX_QUEUED_DOCS:
                        self.stats.item_errors["background_doc_dropped"] += len(queued) - MAX_QUEUED_DOCS
                        del queued[:-MAX_QUEUED_DOCS]
                    if queued and (writer is None or writer.done()):
                        writer = asyncio.create_task(pipeline.write_docs(queued))
                        queued = []
                except Exception:
                    log.exception("background task failed; continuing")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), 1.0)
        finally:
            # alerts and transitions made just before SIGTERM get a short, bounded chance to land
            pending = [writer] if writer is not None and not writer.done() else []
            if queued:
                pending.append(asyncio.create_task(pipeline.write_docs(queued)))
            if pending:
                _, late = await asyncio.wait(pending, timeout=FLUSH_ON_STOP_S)
                for task in late:
                    task.cancel()

    async def _until_stopped(self, awaitable: Any) -> Any:
        """The awaitable's result, or None when SIGTERM came first (the awaitable is cancelled)."""
        task = asyncio.ensure_future(awaitable)
        stop = asyncio.ensure_future(self.stopping.wait())
        done, _ = await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if task in done:
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return None

    def _new_producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap_servers, acks="all",
                                enable_idempotence=True,
                                max_request_size=max(1048576, self.settings.max_record_bytes * 3))

    async def _start_kafka(self) -> bool:
        """Waits for the broker (it may start after us); False when stopped first."""
        delay = 0.5
        while not self.stopping.is_set():
            try:
                await self.producer.start()
                await self.source.start()
                return True
            except KafkaError as exc:
                log.warning("waiting for Kafka", error=repr(exc), retry_in_s=delay)
                # a client whose start failed cannot be started again: make fresh ones
                with contextlib.suppress(Exception):
                    await self.producer.stop()
                with contextlib.suppress(Exception):
                    await self.source.stop()
                self.producer = self._new_producer()
                self.source = KafkaSource(self.settings)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), delay)
                delay = min(10.0, delay * 2)
        return False

    async def _batch(self, pipeline: Pipeline, messages: list[Any], token: int) -> None:
        await pipeline.process(messages)
        self.source.finished(token)
        await self.source.commit_finished()

    async def run(self, early_signals: list[int]) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        if early_signals:  # stopped before it started: nothing fetched, nothing to finish
            log.info("stopped before start", signal=early_signals[0])
            return 0
        deadline_after_stop = self.settings.shutdown_timeout_s
        port = await self.ops.start()
        log.info("ops endpoint", url=f"http://{self.settings.http_host}:{port}", paths=["/health", "/metrics"])
        try:
            self.engine = await wait_for_engine(self.settings, self.stopping)
            self.engine_ok = True
        except EngineUnavailable:
            await self.ops.stop()
            return 0 if self.stopping.is_set() else 1
        self.sink = BulkSink(self.engine, self.stats, max_bytes=self.settings.batch_max_bytes,
                             concurrency=self.settings.bulk_concurrency, gzip=self.settings.gzip,
                             retry_initial_s=self.settings.retry_initial_s, retry_max_s=self.settings.retry_max_s)
        ctx = EnrichContext(host_name=self.host, service_map=self.settings.service_map,
                            state_of=self.monitor.state_of)
        pipeline = Pipeline(sink=self.sink, stats=self.stats, ctx=ctx, monitor=self.monitor,
                            namespace=self.settings.namespace, max_record_bytes=self.settings.max_record_bytes,
                            publish_dead=self._publish_dead, waiting=self._waiting)
        await self.monitor.start(self.engine)
        if not await self._start_kafka():
            await self._shutdown(self.settings.shutdown_timeout_s)
            return 0
        self.consuming = True
        log.info("consuming", topics=self.settings.topic_list, group=self.settings.group_id,
                 namespace=self.settings.namespace, engine=self.engine.name)
        background = asyncio.create_task(self._background(pipeline))
        slots = asyncio.Semaphore(self.settings.max_batches_in_flight)
        inflight: set[asyncio.Task[None]] = set()

        def done(task: asyncio.Task[None]) -> None:
            inflight.discard(task)
            slots.release()
            if not task.cancelled() and task.exception() is not None:
                # never silent: the batch stays uncommitted and the service stops, to be redelivered
                log.error("batch failed", error=repr(task.exception()))
                self.failed = True
                self.stopping.set()

        while not self.stopping.is_set():
            if await self._until_stopped(slots.acquire()) is None:
                break
            fetched = await self._until_stopped(self.source.fetch())
            # registered before any await: a rebalance sees every batch handed out, and records of
            # partitions revoked since the fetch are left out here
            messages = self.source.still_owned(fetched) if fetched else []
            if not messages:
                slots.release()
                continue
            token = self.source.register(messages)
            task = asyncio.create_task(self._batch(pipeline, messages, token))
            inflight.add(task)
            task.add_done_callback(done)

        self.consuming = False
        stopped_at = time.monotonic()
        abandoned = 0
        if inflight:
            _, pending = await asyncio.wait(set(inflight), timeout=max(0.5, deadline_after_stop * 0.75))
            abandoned = len(pending)
            for task in pending:  # stuck on an unavailable engine: uncommitted, redelivered later
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self.source.commit_finished()
        background.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await background
        if abandoned:
            log.warning("shutdown bound reached; batches left uncommitted for redelivery", batches=abandoned)
        await self._shutdown(max(0.5, deadline_after_stop - (time.monotonic() - stopped_at)))
        log.info("stopped", consumed=self.stats.consumed, indexed=self.stats.indexed,
                 dead_lettered=self.stats.dead_lettered)
        return 1 if self.failed else 0

    async def _shutdown(self, bound_s: float) -> None:
        async def close() -> None:
            await self.monitor.stop()
            await self.source.stop()
            await self.producer.stop()
            if self.engine is not None:
                await self.engine.close()
            await self.ops.stop()

        try:
            await asyncio.wait_for(close(), bound_s)
        except TimeoutError:
            log.error("shutdown bound reached; exiting anyway", bound_s=self.settings.shutdown_timeout_s)


async def run(settings: ShipperSettings, early_signals: list[int] | None = None) -> int:
    # Records are acyclic dicts made and dropped by the hundred thousand: a collector pass every
    # 700 allocations is pure overhead. Move start-up objects out of its sight and run it rarely.
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    return await Shipper(settings).run(early_signals or [])
