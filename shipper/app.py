"""`shipper run`: wires the stages together and runs until SIGTERM.

Start-up waits for the engine and installs the templates (idempotent); then the loop is
fetch -> process (index + dead-letter) -> commit, one batch at a time, with the monitor ticking
beside it. SIGTERM stops fetching, lets the batch in progress finish and commit, and exits
within the configured bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import time
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer

from collector.schema import DATASET_PIPELINE, ECS_VERSION, sanitize_namespace
from shipper.config import ShipperSettings
from shipper.engines.base import EngineUnavailable, SearchEngine
from shipper.engines.detect import build_engine, detect_kind
from shipper.enrich import EnrichContext
from shipper.log import get_logger
from shipper.monitor import Monitor, NullMonitor, PipelineStatus
from shipper.ops import OpsServer
from shipper.pipeline import Pipeline
from shipper.sink import BulkSink
from shipper.source import KafkaSource
from shipper.stats import Stats

log = get_logger("shipper")


def build_monitor(settings: ShipperSettings) -> Monitor:
    try:
        from shipper.health import build_monitor as build  # type: ignore[attr-defined]
    except ImportError:
        return NullMonitor()
    monitor: Monitor = build(settings)
    return monitor


async def wait_for_engine(settings: ShipperSettings, stopping: asyncio.Event) -> SearchEngine:
    delay = 0.5
    while True:
        try:
            kind = await detect_kind(settings)
            engine = build_engine(settings, kind)
            await engine.install_templates()
            log.info("engine ready", engine=kind, url=settings.search_url)
            return engine
        except EngineUnavailable as exc:
            if stopping.is_set():
                raise
            log.warning("waiting for the search engine", error=str(exc), retry_in_s=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), delay)
            delay = min(10.0, delay * 2)


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
        self.ops = OpsServer(settings.http_host, settings.http_port, self.stats, self.ready, self.detail)
        self.producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all",
                                         enable_idempotence=True, max_request_size=max(1048576,
                                                                                       settings.max_record_bytes * 3))

    def ready(self) -> bool:
        return self.consuming and self.sink is not None and self.sink.available

    def detail(self) -> dict[str, object]:
        return {"service": "elk-shipper", "consuming": self.consuming,
                "engine": self.engine.name if self.engine else None,
                "engine_available": bool(self.sink and self.sink.available),
                "consumed": self.stats.consumed, "indexed": self.stats.indexed,
                "dead_lettered": self.stats.dead_lettered,
                "lag": sum(self.stats.lag.values())}

    async def _publish_dead(self, entries: list[tuple[bytes | None, bytes]]) -> None:
        futures = [await self.producer.send(self.settings.dead_letter_topic, value, key=key) for key, value in entries]
        await asyncio.gather(*futures)

    async def _waiting(self, seconds: float) -> None:
        log.warning("engine unavailable; holding the batch and retrying", retry_in_s=round(seconds, 2))
        await asyncio.sleep(seconds)

    def pipeline_status(self) -> PipelineStatus:
        lag = dict(self.stats.lag)
        return PipelineStatus(caught_up=self.consuming and bool(lag) and not any(lag.values()),
                              lag_total=sum(lag.values()), lag_by_partition=lag,
                              dead_lettered_total=self.stats.dead_lettered, consumed_total=self.stats.consumed,
                              indexed_total=self.stats.indexed)

    def pipeline_doc(self, now: datetime, window_s: float, last: dict[str, int]) -> tuple[str, dict[str, Any]]:
        ns = sanitize_namespace(self.settings.namespace)
        doc = {
            "@timestamp": now.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "ecs": {"version": ECS_VERSION},
            "event": {"kind": "metric", "dataset": DATASET_PIPELINE},
            "service": {"name": "elk-shipper", "node": {"name": self.host}},
            "shipper": {
                "consumed": self.stats.consumed - last.get("consumed", 0),
                "indexed": self.stats.indexed - last.get("indexed", 0),
                "dead_lettered": self.stats.dead_lettered - last.get("dead_lettered", 0),
                "retried": self.stats.retried - last.get("retried", 0),
                "lag": sum(self.stats.lag.values()),
                "records_per_s": round((self.stats.indexed - last.get("indexed", 0)) / window_s, 2),
                "bulk_latency_ms": round(1000 * self.stats.bulk_sum_s / self.stats.bulk_count, 2)
                if self.stats.bulk_count else 0.0,
            },
            "data_stream": {"type": "metrics", "dataset": DATASET_PIPELINE, "namespace": ns},
        }
        return f"{self.host}-{now.timestamp():.0f}", doc

    async def _background(self, pipeline: Pipeline) -> None:
        """Lag, monitor ticks (once a second) and pipeline metrics; never stops the main loop."""
        last: dict[str, int] = {}
        last_stats = time.monotonic()
        while not self.stopping.is_set():
            try:
                self.stats.lag = await self.source.lag()
                docs = await self.monitor.tick(time.time(), self.pipeline_status())
                if time.monotonic() - last_stats >= self.settings.stats_interval_s:
                    window = time.monotonic() - last_stats
                    docs.append(self.pipeline_doc(datetime.now(UTC), window, last))
                    last = {"consumed": self.stats.consumed, "indexed": self.stats.indexed,
                            "dead_lettered": self.stats.dead_lettered, "retried": self.stats.retried}
                    last_stats = time.monotonic()
                await pipeline.write_docs(docs)
            except Exception:
                log.exception("background task failed; continuing")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), 1.0)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        main = asyncio.current_task()

        def on_signal() -> None:
            if self.stopping.is_set():
                return
            self.stopping.set()
            # a batch stuck on an unavailable engine is abandoned uncommitted: it is redelivered later
            if main is not None:
                loop.call_later(self.settings.shutdown_timeout_s, main.cancel)

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        port = await self.ops.start()
        log.info("ops endpoint", url=f"http://{self.settings.http_host}:{port}", paths=["/health", "/metrics"])
        try:
            self.engine = await wait_for_engine(self.settings, self.stopping)
        except EngineUnavailable:
            await self.ops.stop()
            return 1
        self.sink = BulkSink(self.engine, self.stats, max_bytes=self.settings.batch_max_bytes,
                             concurrency=self.settings.bulk_concurrency,
                             retry_initial_s=self.settings.retry_initial_s, retry_max_s=self.settings.retry_max_s)
        ctx = EnrichContext(host_name=self.host, service_map=self.settings.service_map,
                            state_of=self.monitor.state_of)
        pipeline = Pipeline(sink=self.sink, stats=self.stats, ctx=ctx, monitor=self.monitor,
                            namespace=self.settings.namespace, max_record_bytes=self.settings.max_record_bytes,
                            publish_dead=self._publish_dead, commit=self.source.commit, waiting=self._waiting)
        await self.monitor.start(self.engine)
        await self.producer.start()
        await self.source.start()
        self.consuming = True
        log.info("consuming", topics=self.settings.topic_list, group=self.settings.group_id,
                 namespace=self.settings.namespace)
        background = asyncio.create_task(self._background(pipeline))
        cancelled = False
        try:
            while not self.stopping.is_set():
                fetch = asyncio.create_task(self.source.fetch())
                stop = asyncio.create_task(self.stopping.wait())
                done, _ = await asyncio.wait({fetch, stop}, return_when=asyncio.FIRST_COMPLETED)
                if fetch not in done:
                    fetch.cancel()  # nothing fetched is lost: it was never committed
                    break
                stop.cancel()
                async with self.source.batch_lock:
                    await pipeline.process(fetch.result())
        except asyncio.CancelledError:
            cancelled = True
            log.warning("shutdown bound reached with a batch in progress; it stays uncommitted")
        finally:
            self.consuming = False
            background.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await background
            await self._shutdown()
        log.info("stopped", consumed=self.stats.consumed, indexed=self.stats.indexed,
                 dead_lettered=self.stats.dead_lettered)
        return 1 if cancelled else 0

    async def _shutdown(self) -> None:
        async def close() -> None:
            await self.monitor.stop()
            await self.source.stop()
            await self.producer.stop()
            if self.engine is not None:
                await self.engine.close()
            await self.ops.stop()

        try:
            await asyncio.wait_for(close(), self.settings.shutdown_timeout_s)
        except TimeoutError:
            log.error("shutdown bound reached; exiting anyway", bound_s=self.settings.shutdown_timeout_s)


async def run(settings: ShipperSettings) -> int:
    return await Shipper(settings).run()
