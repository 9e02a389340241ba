"""One batch, transformed: decode -> enrich -> route, and what the monitor makes of each record. Pure.

`prepare` turns Kafka messages into bulk actions and dead letters without I/O, so the whole
transform is tested without servers. No record, header or combination of them can raise out of
it: a record that fails anywhere in the chain becomes a dead letter with the reason, and one the
monitor cannot read is still indexed (the failure is counted), so one hostile record never stops
its batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from collector.contract.ecs import base_fields
from collector.contract.streams import OWN_WRITER
from shipper.bulk import Action
from shipper.context import Batch
from shipper.deadletter import DeadLetter
from shipper.decode import Rejected, decode
from shipper.fast import enrich_route_general, failure_reason, prepare_fast
from shipper.ids import record_id
from shipper.monitor import Doc, Monitor, NullMonitor
from shipper.provenance import Message, Provenance
from shipper.route import namespace_of, stream_name


@dataclass(slots=True)
class Prepared:
    actions: list[Action] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    observe_failures: list[str] = field(default_factory=list)  # the monitor's errors (the records still go in)


def doc_action(doc_id: str, doc: dict[str, Any]) -> Action:
    """A document the shipper writes itself (monitor, pipeline metrics, dead-letter entries), marked as such."""
    stream = doc["data_stream"]
    if "ecs" not in doc:  # the ECS base fields every document the product writes carries
        doc.update(base_fields())
    event = doc.get("event")
    if type(event) is not dict:
        event = doc["event"] = {}
    event["provider"] = OWN_WRITER
    name = stream_name(stream["type"], stream["dataset"], namespace_of(stream["namespace"]))
    return Action(doc_id, name, orjson.dumps(doc))


def _own_actions(docs: list[Doc]) -> list[Action]:
    return [doc_action(doc_id, doc) for doc_id, doc in docs]


def prepare(messages: Sequence[Message], batch: Batch, monitor: Monitor, fast: bool = True,
            native: bool = True) -> Prepared:
    """`fast=False` runs every step of the chain for every record (the general path, which the fast
    path must match byte for byte: see shipper/fast.py); `native=False` keeps the fast path in
    Python even when its compiled part (shipper/native.py) is there."""
    out = Prepared()
    if fast:
        prepare_fast(messages, batch, monitor, out, _own_actions, native)
        return out
    actions, dead = out.actions, out.dead
    settings = batch.settings
    topic_ids = batch.topic_ids
    # Every serialised record is copied into one arena and the actions keep views of it:
    # orjson's own result keeps ~4 KB of buffer per object alive, 10x the record itself.
    arena = bytearray()
    spans: list[tuple[Action, int, int]] = []
    observe = None if type(monitor) is NullMonitor else monitor.observe
    transform = enrich_route_general
    max_bytes = settings.max_record_bytes
    loads, dumps = orjson.loads, orjson.dumps
    for message in messages:
        raw = message.value
        record: Any = None
        if raw is not None and len(raw) <= max_bytes:  # decode's common case inline
            try:
                record = loads(raw)
            except orjson.JSONDecodeError:
                pass
        if type(record) is not dict:
            try:  # decode again, for the reason
                record = decode(raw, max_bytes)
            except Rejected as exc:
                dead.append(DeadLetter(message, raw, exc.kind, exc.reason, "decode"))
                continue
        try:
            record, stream = transform(record, message, batch)
            start = len(arena)
            arena += dumps(record)
            origin = Provenance(message, raw, record["service"]["name"])
            action = Action(record_id(record, message, topic_ids.get(message.topic, "")), stream, b"", origin)
        except Exception as exc:  # any value anywhere (integers beyond 64 bit, nesting, ...): never the batch
            dead.append(DeadLetter(message, raw, "transform", failure_reason(exc), "decode"))
            continue
        spans.append((action, start, len(arena)))
        actions.append(action)
        if observe is not None:
            try:
                docs: list[Doc] = observe(record, message)
                if docs:
                    actions += _own_actions(docs)
            except Exception as exc:
                out.observe_failures.append(failure_reason(exc))
    view = memoryview(arena)
    for action, start, end in spans:
        action.source = view[start:end]
    return out
