"""One batch through the stages: decode -> enrich -> route -> bulk sink -> dead letters.

`prepare` is pure (no I/O): it turns Kafka messages into bulk actions and dead letters, so the
whole transform is tested without servers; `Pipeline.process` does the I/O.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from collector.contract.ecs import base_fields
from shipper import deadletter
from shipper.deadletter import DeadLetter
from shipper.decode import Rejected, decode
from shipper.enrich import EnrichContext, Origin, document_id, dotted_key_count, enrich, top_level_only
from shipper.monitor import Doc, Monitor, NullMonitor
from shipper.route import route
from shipper.sink import Action, BulkSink
from shipper.stats import Stats


class Message(Origin, Protocol):
    @property
    def value(self) -> bytes | None: ...


def doc_action(doc_id: str, doc: dict[str, Any], origin: Any = None) -> Action:
    """A document the product writes itself (health, alerts, dead letters, pipeline metrics)."""
    if "ecs" not in doc:
        doc = {**base_fields(), **doc}
    stream = doc["data_stream"]
    name = f"{stream['type']}-{stream['dataset']}-{stream['namespace']}"
    return Action(doc_id, name, orjson.dumps(doc), origin)


def prepare(messages: Sequence[Message], *, namespace: str, max_record_bytes: int, ctx: EnrichContext,
            monitor: Monitor, now: datetime) -> tuple[list[Action], list[DeadLetter]]:
    actions: list[Action] = []
    dead: list[DeadLetter] = []
    # Every serialised record is copied into one arena and the actions keep views of it:
    # orjson's own result keeps ~4 KB of buffer per object alive, 10x the record itself.
    arena = bytearray()
    spans: list[tuple[Action, int, int]] = []
    observe = None if type(monitor) is NullMonitor else monitor.observe
    for message in messages:
        meta = message  # the message is its own origin: nothing is copied per record
        try:
            record = decode(message.value, max_record_bytes)
        except Rejected as exc:
            dead.append(DeadLetter(meta, message.value, exc.kind, exc.reason, "decode"))
            continue
        try:
            dotted = dotted_key_count(message.value or b"")
            record = enrich(record, meta, now, ctx, expand=dotted != 0, nested=not top_level_only(record, dotted))
            stream = route(record, message.topic, namespace)
            start = len(arena)
            arena += orjson.dumps(record)
        except (TypeError, ValueError, RecursionError) as exc:  # e.g. integers beyond 64 bit
            dead.append(DeadLetter(meta, message.value, "transform", str(exc), "decode"))
            continue
        action = Action(document_id(record, meta), stream, b"", (meta, message.value, record["service"]["name"]))
        spans.append((action, start, len(arena)))
        actions.append(action)
        if observe is not None:
            for doc_id, doc in observe(record):
                actions.append(doc_action(doc_id, doc))
    view = memoryview(arena)
    for action, start, end in spans:
        action.source = view[start:end]
    return actions, dead


PublishDead = Callable[[list[tuple[bytes | None, bytes]]], Awaitable[None]]


class Pipeline:
    def __init__(self, *, sink: BulkSink, stats: Stats, ctx: EnrichContext, monitor: Monitor, namespace: str,
                 max_record_bytes: int, publish_dead: PublishDead,
                 waiting: Callable[[float], Awaitable[None]] | None = None) -> None:
        self.sink = sink
        self.stats = stats
        self.ctx = ctx
        self.monitor = monitor
        self.namespace = namespace
        self.max_record_bytes = max_record_bytes
        self.publish_dead = publish_dead
        self.waiting = waiting

    async def process(self, messages: Sequence[Message]) -> None:
        """Returns once every message is indexed or dead-lettered (the caller then may commit them)."""
        if not messages:
            return
        self.stats.consumed += len(messages)
        now = datetime.now(UTC)
        actions, dead = prepare(messages, namespace=self.namespace, max_record_bytes=self.max_record_bytes,
                                ctx=self.ctx, monitor=self.monitor, now=now)
        failures = await self.sink.write(actions, self.waiting)
        for failure in failures:
            if failure.action.origin is None:  # a monitor document the engine refused: nothing to replay
                continue
            meta, raw, service = failure.action.origin
            dead.append(DeadLetter(meta, raw, failure.error_type, failure.reason, "index", service))
        await self.dead_letter(dead, now)
        self.stats.batches += 1

    async def dead_letter(self, dead: list[DeadLetter], now: datetime) -> None:
        if not dead:
            return
        docs = [(deadletter.entry_id(d), deadletter.entry(d, self.namespace, now), d) for d in dead]
        # Kafka first: the durable, replayable copy; then the searchable one
        await self.publish_dead([(d.meta.key, deadletter.kafka_value(doc)) for _, doc, d in docs])
        refused = await self.sink.write([doc_action(doc_id, doc) for doc_id, doc, _ in docs], self.waiting)
        self.stats.dead_lettered += len(dead)
        for failure in refused:  # still in the dead-letter topic; count it so it shows
            self.stats.item_errors[f"deadletter_{failure.error_type}"] += 1

    async def write_docs(self, docs: list[Doc]) -> None:
        """Documents not tied to Kafka offsets (monitor ticks, pipeline metrics)."""
        if docs:
            await self.sink.write([doc_action(doc_id, doc) for doc_id, doc in docs], self.waiting)
