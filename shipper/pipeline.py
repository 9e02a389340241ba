"""One batch through the stages: transform (pure, shipper/transform.py) -> bulk sink -> dead letters."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime

from collector.contract.streams import is_share
from shipper import deadletter
from shipper.context import Batch, TransformSettings
from shipper.deadletter import DeadLetter
from shipper.log import get_logger
from shipper.monitor import Doc, Monitor
from shipper.provenance import Message
from shipper.sink import BulkSink
from shipper.stats import Stats
from shipper.transform import doc_action, prepare

log = get_logger("shipper")

PublishDead = Callable[[list[tuple[bytes | None, bytes]]], Awaitable[None]]
TopicIdsOf = Callable[[Iterable[str]], Awaitable[Mapping[str, str]]]


class Pipeline:
    def __init__(self, *, sink: BulkSink, stats: Stats, settings: TransformSettings, monitor: Monitor,
                 publish_dead: PublishDead, waiting: Callable[[float], Awaitable[None]] | None = None,
                 topic_ids: TopicIdsOf | None = None) -> None:
        self.sink = sink
        self.stats = stats
        self.settings = settings
        self.monitor = monitor
        self.publish_dead = publish_dead
        self.waiting = waiting
        self.topic_ids = topic_ids  # None: ids without Kafka's topic ids (unit tests, benchmarks)
        # set at start from the dead-letter topic's message limit (shipper.topics)
        self.dead_letter_max_bytes = deadletter.DEFAULT_MAX_ENTRY_BYTES

    async def process(self, messages: Sequence[Message]) -> None:
        """Returns once every message is indexed or dead-lettered (the caller then may commit them)."""
        if not messages:
            return
        ids = await self.topic_ids({m.topic for m in messages}) if self.topic_ids is not None else {}
        shares = [m for m in messages if m.headers and is_share(m.headers)]
        refused = self.monitor.receive_shares(shares) if shares else []
        if shares:  # another replica's counts for the health monitor: never indexed (shipper/health/shares.py)
            messages = [m for m in messages if not (m.headers and is_share(m.headers))]
        self.stats.consumed += len(messages) + len(refused)
        now = datetime.now(UTC)
        prepared = prepare(messages, Batch(self.settings, now, topic_ids=ids), self.monitor)
        if prepared.observe_failures:
            self.stats.item_errors["observe_failed"] += len(prepared.observe_failures)
            log.warning("the monitor could not read records; they are indexed all the same",
                        records=len(prepared.observe_failures), first=prepared.observe_failures[0])
        dead = prepared.dead
        dead += [DeadLetter(m, m.value, "share", reason, "decode") for m, reason in refused]
        failures = await self.sink.write(prepared.actions, self.waiting)
        for failure in failures:
            origin = failure.action.origin
            if origin is None:  # a monitor document the engine refused: nothing to replay
                continue
            dead.append(DeadLetter(origin.origin, origin.raw, failure.error_type, failure.reason, "index",
                                   origin.service))
        for letter in dead:
            letter.topic_id = ids.get(letter.meta.topic, "")
        await self.dead_letter(dead, now)
        self.stats.batches += 1

    async def dead_letter(self, dead: list[DeadLetter], now: datetime) -> None:
        if not dead:
            return
        namespace = self.settings.namespace
        docs = [(deadletter.entry_id(d), deadletter.entry(d, namespace, now, self.dead_letter_max_bytes), d)
                for d in dead]
        # Kafka first: the durable, replayable copy; then the searchable one
        await self.publish_dead([(deadletter.kafka_key(d), deadletter.kafka_value(doc)) for _, doc, d in docs])
        refused = await self.sink.write([doc_action(doc_id, doc) for doc_id, doc, _ in docs], self.waiting)
        self.stats.dead_lettered += len(dead)
        for failure in refused:  # still in the dead-letter topic; count it so it shows
            self.stats.item_errors[f"deadletter_{failure.error_type}"] += 1

    async def write_docs(self, docs: list[Doc]) -> None:
        """Documents not tied to Kafka offsets (monitor ticks, pipeline metrics)."""
        if docs:
            await self.sink.write([doc_action(doc_id, doc) for doc_id, doc in docs], self.waiting)
