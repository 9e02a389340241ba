"""The transform's fast path: `enrich` + `route` in one function, for the common record.

The common record is the collector library's (and the tailer's and the intakes', which use the
same builder): an ECS object with `log.level` and `ecs.version` written dotted on its top level
(as the ecs-logging spec puts them), a canonical level, a `@timestamp` in the wire form, a
`service` object with its name, an `event` object, no Kafka headers. For such a record every step
of the chain in shipper/enrich.py reduces to a few dict operations; the fast path does those
inline, with what depends on the record's keys only (which keys are dotted, how to move them)
worked out once per set of top-level keys and cached.

The rule that keeps the two paths identical: each step is done inline only when the record, as
that step would see it, is in the step's common case; otherwise that step's own function from
shipper/enrich.py runs, on the same record at the same point of the chain. So the fast path is
the general path with the common case of each step inlined, never a second set of rules; a step
changed in enrich.py without its inline copy here shows up in tests/shipper/test_fast.py, which
compares the two paths' documents byte for byte on the benchmark corpus and on generated hostile
records (and tests/shipper/test_hostile.py runs both).
"""

from __future__ import annotations

from typing import Any

from collector.contract.ecs import ECS_VERSION
from collector.contract.levels import LEVELS
from collector.contract.streams import OWN_WRITER
from collector.contract.timefmt import ISO_MS
from shipper.context import Batch
from shipper.dotted import dotted_key_count
from shipper.enrich import (
    AGENT_TYPE,
    Record,
    enrich,
    expand_keys,
    normalize_level,
    normalize_timestamp,
    resolve_service,
    stamp_ingest,
)
from shipper.provenance import Message
from shipper.route import route

CANONICAL_LEVELS = frozenset(LEVELS)
MAX_SHAPES = 1024  # distinct top-level key sets remembered; past it a new shape is worked out per record

# A shape's dotted keys as (key, object, field), when every one of them has exactly one dot and
# none is the prefix of another (`expand_top_level`'s conflict rule then never applies); None when
# the shape has a dotted key of another form (the general expand_keys decides).
Moves = tuple[tuple[str, str, str], ...] | None
_shapes: dict[tuple[str, ...], Moves] = {}
_UNKNOWN: Any = object()


def _moves(keys: tuple[str, ...]) -> Moves:
    moves = []
    for key in keys:
        if "." in key:
            head, _, leaf = key.partition(".")
            if not head or not leaf or "." in leaf:
                return None
            moves.append((key, head, leaf))
    return tuple(moves)  # with one dot each, no key is the prefix of another (the rebuild's conflict rule)


def shape_moves(record: Record) -> Moves:
    keys = tuple(record)
    moves = _shapes.get(keys, _UNKNOWN)
    if moves is _UNKNOWN:
        moves = _moves(keys)
        if len(_shapes) < MAX_SHAPES:
            _shapes[keys] = moves
    return moves


def _expand(record: Record, message: Message, batch: Batch) -> Record:
    """expand_keys for a record whose shape has simple dotted keys: when the raw bytes have no other
    dotted key (none nested) and no move runs into an existing field, the keys are moved in place,
    as expand_top_level would; anything else goes to expand_keys."""
    moves = shape_moves(record)
    if not moves or dotted_key_count(message.value or b"") != len(moves):
        return expand_keys(record, message, batch)
    get = record.get
    for _, head, leaf in moves:
        target = get(head, _UNKNOWN)
        if target is not _UNKNOWN and (type(target) is not dict or leaf in target):
            return expand_keys(record, message, batch)
    for key, head, leaf in moves:
        value = record.pop(key)
        target = get(head)
        if target is None:
            record[head] = {leaf: value}
        else:
            target[leaf] = value
    return record


def enrich_route(record: Record, message: Message, batch: Batch) -> tuple[Record, str]:
    """The same record and stream as `route(enrich(record, ...), ...)`, with each step's common case inline."""
    record = _expand(record, message, batch)
    # normalize_timestamp: already in the wire form and not in the future
    ts = record.get("@timestamp")
    if not (type(ts) is str and ts <= batch.latest and ISO_MS.fullmatch(ts)):
        record = normalize_timestamp(record, message, batch)
    # normalize_level: a canonical level in `log`, and a message
    log = record.get("log")
    if not (type(log) is dict and "message" in record
            and ((level := log.get("level")) is None or (type(level) is str and level in CANONICAL_LEVELS))):
        record = normalize_level(record, message, batch)
    # resolve_service: a named service object, the node not flat, no headers to read
    service = record.get("service")
    if (type(service) is dict and type(name := service.get("name")) is str and name
            and type(service.get("node")) is not str and not message.headers):
        pass
    else:
        record = resolve_service(record, message, batch)
        name = record["service"]["name"]
    # stamp_ingest: an event object with no provider, or a text one that is not the shipper's
    event = record.get("event")
    if type(event) is dict and ((provider := event.get("provider")) is None
                                or (type(provider) is str and provider != OWN_WRITER)):
        event["ingested"] = batch.ingested
        ecs = record.get("ecs")
        if type(ecs) is dict:
            ecs.setdefault("version", ECS_VERSION)
        else:
            record["ecs"] = {"version": ECS_VERSION}
        if "agent" not in record:
            record["agent"] = {"type": AGENT_TYPE, "name": batch.settings.host_name}
        state = batch.settings.state_of(name)
        if state is not None:
            health = record.get("health")
            if type(health) is not dict:
                record["health"] = health = {} if health is None else {"value": health}
            health.setdefault("state", state)
    else:
        record = stamp_ingest(record, message, batch)
    return record, route(record, message, batch)


def enrich_route_general(record: Record, message: Message, batch: Batch) -> tuple[Record, str]:
    """The general path: every step of the chain, then route."""
    record = enrich(record, message, batch)
    return record, route(record, message, batch)

