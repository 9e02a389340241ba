"""`shipper run`: wires the stages together and runs until SIGTERM.

Start-up waits for the engine and installs the templates (idempotent); then the loop fetches
a batch, hands it to its own task (transform -> index -> dead-letter -> commit the finished
prefix) and fetches the next one while earlier bulks are still in flight, up to
max_batches_in_flight batches (which bounds memory and, while the engine is down, stops
consumption: Kafka is the buffer). The monitor ticks beside it. SIGTERM stops fetching, lets
the batches in progress finish and commit, writes what the monitor made last, hands the health
monitor's services over (shipper.source.KafkaSource.stop) and exits within the configured bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import socket
import time
from typing import Any

from aiokafka.errors import KafkaError

from collector.contract.promtext import render
from shipper.background import Background
from shipper.config import ShipperSettings
from shipper.context import TransformSettings
from shipper.engines.base import EngineRejected, EngineUnavailable, SearchEngine
from shipper.health import build_monitor
from shipper.log import get_logger
from shipper.native import fast_path_kind
from shipper.ops import OpsServer
from shipper.pipeline import Pipeline
from shipper.producer import DeadLetterProducer
from shipper.route import namespace_of
from shipper.setup import wait_for_engine
from shipper.sink import BulkSink
from shipper.source import KafkaSource
from shipper.stats import Stats
from shipper.streamcap import StreamCap, existing_streams
from shipper.topic_ids import TopicIds
from shipper.topics import TopicSetupError, ensure_dead_letter_topic

log = get_logger("shipper")


class Shipper:
    def __init__(self, settings: ShipperSettings) -> None:
        self.settings = settings
        self.stats = Stats()
        self.stopping = asyncio.Event()
        self.producer = DeadLetterProducer(settings)
        self.monitor = build_monitor(settings, forward=self.producer.send_shares)
        # through the dead-letter producer's connection (it is started before the consumer)
        self.topic_ids = TopicIds(lambda: self.producer.client.client, settings.retry_initial_s, settings.retry_max_s)
        self.source = KafkaSource(settings, hooks=(self.topic_ids, self.monitor))
        self.host = socket.gethostname()
        self.engine: SearchEngine | None = None
        self.sink: BulkSink | None = None
        self.consuming = False
        self.failed = False
        self.background: Background | None = None
        self.ops = OpsServer(settings.http_host, settings.http_port, self.metrics_text, self.ready, self.detail)
        self.streams = StreamCap(settings.max_streams)

    def ready(self) -> bool:
        return self.consuming and self.background is not None and self.background.engine_ok

    def metrics_text(self) -> str:
        return render([*self.stats.prometheus(self.ready()), *self.streams.metrics(), *self.monitor.metrics()])

    def detail(self) -> dict[str, object]:
        return {"service": "elk-shipper", "consuming": self.consuming,
                "engine": self.engine.name if self.engine else None,
                "engine_available": bool(self.sink and self.sink.available),
                # item 429s: the engine sheds load, records wait in Kafka (lag grows) instead of dead letters
                "engine_overloaded": bool(self.sink and self.sink.overloaded),
                "consumed": self.stats.consumed, "indexed": self.stats.indexed,
                "dead_lettered": self.stats.dead_lettered,
                "lag": sum(self.stats.lag.values())}

    async def _waiting(self, seconds: float) -> None:
        overloaded = bool(self.sink and self.sink.overloaded)
        log.warning("engine overloaded; holding the batch and retrying" if overloaded
                    else "engine unavailable; holding the batch and retrying", retry_in_s=round(seconds, 2))
        await asyncio.sleep(seconds)

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

    async def _start_kafka(self, pipeline: Pipeline) -> bool:
        """Waits for the broker (it may start after us); False when stopped first. TopicSetupError
        when the dead-letter topic is missing and may not be created."""
        delay = 0.5
        while not self.stopping.is_set():
            try:
                pipeline.dead_letter_max_bytes = await ensure_dead_letter_topic(self.settings)
                await self.producer.start()
                await self.source.start()
                return True
            except KafkaError as exc:
                log.warning("waiting for Kafka", error=repr(exc), retry_in_s=delay)
                # a client whose start failed cannot be started again (the producer renews its own)
                await self.producer.stop()
                with contextlib.suppress(Exception):
                    await self.source.stop()
                self.source = KafkaSource(self.settings, hooks=(self.topic_ids, self.monitor))
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
        port = await self.ops.start()
        log.info("ops endpoint", url=f"http://{self.settings.http_host}:{port}", paths=["/health", "/metrics"])
        try:
            self.engine = await wait_for_engine(self.settings, self.stopping)
        except EngineUnavailable:
            await self.ops.stop()
            return 0 if self.stopping.is_set() else 1
        self.sink = BulkSink(self.engine, self.stats, max_bytes=self.settings.batch_max_bytes,
                             concurrency=self.settings.bulk_concurrency, gzip=self.settings.gzip,
                             retry_initial_s=self.settings.retry_initial_s, retry_max_s=self.settings.retry_max_s,
                             item_retry_s=self.settings.item_retry_s)
        transform = TransformSettings(host_name=self.host, service_map=self.settings.service_map,
                                      state_of=self.monitor.state_of, namespace=self.settings.namespace,
                                      max_record_bytes=self.settings.max_record_bytes, roles=self.settings.roles,
                                      streams=self.streams, native=self.settings.native_fast_path)
        await self._load_streams()
        pipeline = Pipeline(sink=self.sink, stats=self.stats, settings=transform, monitor=self.monitor,
                            publish_dead=self.producer.publish, waiting=self._waiting, topic_ids=self.topic_ids.of)
        self.background = Background(settings=self.settings, stats=self.stats, source=lambda: self.source,
                                     engine=self.engine, monitor=self.monitor, pipeline=pipeline, host=self.host,
                                     consuming=lambda: self.consuming)
        # the restore waits up to half a minute for an engine that is starting: SIGTERM ends the wait
        await self._until_stopped(self.monitor.start(self.engine))
        if self.stopping.is_set():
            log.info("stopped while restoring health state")
            await self._shutdown(self.settings.shutdown_timeout_s)
            return 0
        try:
            started = await self._start_kafka(pipeline)
        except TopicSetupError as exc:
            log.error("cannot start", error=str(exc))
            await self._shutdown(self.settings.shutdown_timeout_s)
            return 1
        if not started:
            await self._shutdown(self.settings.shutdown_timeout_s)
            return 0
        self.consuming = True
        log.info("consuming", topics=self.settings.topic_list, group=self.settings.group_id,
                 namespace=self.settings.namespace, engine=self.engine.name,
                 fast_path=fast_path_kind(self.settings.native_fast_path))
        background = asyncio.create_task(self.background.run(self.stopping))
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
        # every step below has a share of the bound: a broker or engine that is away (the final
        # commit waits for Kafka's coordinator without end otherwise) never holds the exit
        deadline = time.monotonic() + self.settings.shutdown_timeout_s

        def left(share: float = 1.0) -> float:
            return max(0.05, (deadline - time.monotonic()) * share)

        abandoned = 0
        if inflight:
            _, pending = await asyncio.wait(set(inflight), timeout=left(0.6))
            abandoned = len(pending)
            for task in pending:  # stuck on an unavailable engine or broker: uncommitted, redelivered later
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self.source.commit_finished(timeout_s=left(0.4))
        # The background task ends on its own (the stop is set) after writing what the last ticks
        # made, within its own bound: cancelling it at once lost an alert made just before SIGTERM.
        _, late = await asyncio.wait({background}, timeout=left(0.5))
        for task in late:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if abandoned:
            log.warning("shutdown bound reached; batches left uncommitted for redelivery", batches=abandoned)
        await self._shutdown(left())
        log.info("stopped", consumed=self.stats.consumed, indexed=self.stats.indexed,
                 dead_lettered=self.stats.dead_lettered)
        return 1 if self.failed else 0

    async def _load_streams(self) -> None:
        """The namespace's existing streams count against the stream cap (shipper/streamcap.py)."""
        assert self.engine is not None
        namespace = namespace_of(self.settings.namespace)
        try:
            self.streams.load(await existing_streams(self.engine, namespace), namespace)
        except (EngineUnavailable, EngineRejected) as exc:  # the cap still holds for this process
            log.warning("existing streams not listed; the stream cap counts this process's only", error=str(exc))
        log.info("stream cap", streams=self.streams.admitted, max_streams=self.streams.limit)

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
    # the start-up objects out of the collector's sight (its thresholds: shipper/cli.py, set before the imports)
    gc.freeze()
    return await Shipper(settings).run(early_signals or [])
