"""The transform's fast path: `prepare` for the common record, in one loop.

The common record is the collector library's (and the tailer's and the intakes', which use the
same builder): an ECS object with `log.level` and `ecs.version` written dotted on its top level
(as the ecs-logging spec puts them), a canonical level, a `@timestamp` in the wire form, a
`service` object with its name, an `event` object, no Kafka headers. For such a record every step
of the chain in shipper/enrich.py reduces to a few dict operations; the fast path does those
inline, works out what depends only on a record's service (its health state, its stream) once
per batch, writes each record's bulk lines once, and shows the health monitor counts per batch.

The rule that keeps the two paths identical: each step is done inline only when the record, as
that step would see it, is in the step's common case; otherwise that step's own function from
shipper/enrich.py runs, on the same record at the same point of the chain. So the fast path is
the general path with the common case of each step inlined, never a second set of rules; a step
changed in enrich.py without its inline copy here shows up in tests/shipper/test_fast.py, which
compares the two paths' documents byte for byte on the benchmark corpus and on generated hostile
records (and tests/shipper/test_hostile.py runs both).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from collector.contract.ecs import ECS_VERSION
from collector.contract.levels import ERROR_LEVELS, LEVELS
from collector.contract.streams import LOGS, OWN_WRITER
from collector.contract.timefmt import ISO_MS
from shipper.bulk import Action, action_head
from shipper.context import Batch
from shipper.deadletter import DeadLetter
from shipper.decode import Rejected, decode
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
from shipper.ids import SHORT_ID, bounded_id, record_id
from shipper.monitor import Doc, Monitor, NullMonitor
from shipper.native import NativeBatch
from shipper.provenance import Message, Provenance
from shipper.route import namespace_of, route, service_dataset, stream_name

if TYPE_CHECKING:
    from shipper.transform import Prepared

CANONICAL_LEVELS = frozenset(LEVELS)
NOT_ERRORS = CANONICAL_LEVELS - ERROR_LEVELS  # levels that never make a record an error (see the health signals)
_UNKNOWN: Any = object()


def _expand(record: Record, message: Message, batch: Batch) -> Record:
    """expand_keys for the common record, whose only dotted keys are the two the library writes on
    its top level, `log.level` and `ecs.version` (the ecs-logging spec's): when the raw bytes have
    no other dotted key (none nested: one scan, see shipper/dotted.py), neither runs into an
    existing field, and at most one of them creates its object (so their order cannot matter),
    they are moved in place, as expand_top_level would; anything else goes to expand_keys."""
    dotted = dotted_key_count(message.value or b"")
    if dotted == 0:
        return record
    level = "log.level" in record
    version = "ecs.version" in record
    if dotted != level + version:
        return expand_keys(record, message, batch)
    log = record.get("log", _UNKNOWN)
    ecs = record.get("ecs", _UNKNOWN)
    if level and log is not _UNKNOWN and (type(log) is not dict or "level" in log):
        return expand_keys(record, message, batch)
    if version and ecs is not _UNKNOWN and (type(ecs) is not dict or "version" in ecs):
        return expand_keys(record, message, batch)
    if level and version and log is _UNKNOWN and ecs is _UNKNOWN:
        return expand_keys(record, message, batch)  # two new objects: the keys' order decides theirs
    if level:
        value = record.pop("log.level")
        if log is _UNKNOWN:
            record["log"] = {"level": value}
        else:
            log["level"] = value
    if version:
        value = record.pop("ecs.version")
        if ecs is _UNKNOWN:
            record["ecs"] = {"version": value}
        else:
            ecs["version"] = value
    return record


def prepare_fast(messages: Sequence[Message], batch: Batch, monitor: Monitor, out: Prepared,
                 own_actions: Callable[[list[Doc]], list[Action]], use_native: bool = True) -> None:
    """`prepare` on the fast path: each step's common case inline in one loop, with what depends only
    on a record's service (its health state, its stream) worked out once per batch, and each record's
    bulk line (action and document) written once into one arena that `bulk_body` joins.

    The health monitor is shown the log records as counts per service and 10 seconds of event time
    (and those that may be errors by level and status code), per partition, at the end of the batch,
    instead of one call per record (HealthMonitor.observe_counts); probe results, which change health
    states, still one by one, as they come."""
    actions, dead = out.actions, out.dead
    settings = batch.settings
    topic_ids = batch.topic_ids
    max_bytes = settings.max_record_bytes
    latest, ingested = batch.latest, batch.ingested
    state_of, host_name = settings.state_of, settings.host_name
    health_topics, known = settings.roles.health, settings.streams.known
    ns = namespace_of(settings.namespace)
    loads, dumps = orjson.loads, orjson.dumps
    observe = None if type(monitor) is NullMonitor else monitor.observe
    observe_counts: Any = getattr(monitor, "observe_counts", None)  # the health monitor's (not in Monitor)
    upto_of: Any = getattr(monitor, "observed_upto", None)
    counted = observe is not None and observe_counts is not None and upto_of is not None
    width: int = getattr(monitor, "count_prefix", lambda: 19)()
    # Per batch: each service's health state (forgotten whenever a probe result was observed), each
    # (topic, service, metric kind)'s stream, each stream's action-line prefix.
    states: dict[str, Any] = {}
    routes: dict[tuple[str, str, bool], tuple[str, str, str]] = {}
    heads: dict[str, bytes] = {}
    # For the monitor: the newest offset observed per partition (the current one's in `floor`), the
    # counts (see Signals.observe_counts).
    uptos: dict[tuple[str, int], int] = {}
    counts: dict[tuple[str, str], list[Any]] = {}
    maybe: dict[tuple[str, str, Any, Any], int] = {}
    floor = -1
    topic, partition = "", -1
    is_health = True  # before the first run: nothing to hand the monitor
    id_base, id_tail = "", ""
    # Every bulk line (the action, then the document) is copied into one arena and the actions keep
    # views of it: orjson's own result keeps ~4 KB of buffer per object alive, 10x the record itself.
    arena = bytearray()
    spans: list[tuple[Action, int, int, int]] = []
    record: Any = None
    native = None
    if use_native and settings.native and NativeBatch is not None:
        native = NativeBatch(latest, ingested, ECS_VERSION, AGENT_TYPE, host_name, ns, OWN_WRITER, SHORT_ID,
                             list(LEVELS), states, state_of, routes, action_head)
    for message in messages:
        raw = message.value
        if message.partition != partition or message.topic != topic:  # a new partition's run
            if counted and not is_health:
                uptos[(topic, partition)] = floor
            topic, partition = message.topic, message.partition
            is_health = topic in health_topics
            tid = topic_ids.get(topic, "")
            id_base, id_tail = f"{topic}-{partition}-", f"-{tid}" if tid else ""
            if counted and not is_health:
                floor = uptos.get((topic, partition), -2)
                if floor == -2:
                    floor = upto_of(topic, partition)
            if native is not None and not is_health:
                native.run(topic, id_base, id_tail)
        offset = message.offset
        hit = None
        if native is not None and not is_health and raw is not None and len(raw) <= max_bytes and not message.headers:
            try:
                hit = native.transform(raw, offset, arena)
            except Exception:  # a state_of that raised: the Python path meets it again, and says why
                hit = None
        if hit is not None:  # the common record, done by the compiled part (native/): its lines are in the arena
            doc_id, name, stream, type_, ts, level, code, line, start, end = hit
            record = None
            action = Action(doc_id, stream, b"", Provenance(message, raw, name))
            spans.append((action, line, start, end))
            actions.append(action)
        else:
            record = None
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
                record = _expand(record, message, batch)
                # normalize_timestamp: already in the wire form and not in the future
                ts = record.get("@timestamp")
                if not (type(ts) is str and ts <= latest and ISO_MS.fullmatch(ts)):
                    record = normalize_timestamp(record, message, batch)
                    ts = record.get("@timestamp")
                # normalize_level: a canonical level in `log`, and a message
                log = record.get("log")
                if not (type(log) is dict and "message" in record and ((level := log.get("level")) is None
                                                                       or (type(level) is str
                                                                           and level in CANONICAL_LEVELS))):
                    record = normalize_level(record, message, batch)
                # resolve_service: a named service object, the node not flat, no headers to read
                service = record.get("service")
                if not (type(service) is dict and type(name := service.get("name")) is str and name
                        and type(service.get("node")) is not str and not message.headers):
                    record = resolve_service(record, message, batch)
                    name = record["service"]["name"]
                # stamp_ingest: an event object with no provider, or a text one that is not the shipper's
                event = record.get("event")
                if type(event) is dict and ((provider := event.get("provider")) is None
                                            or (type(provider) is str and provider != OWN_WRITER)):
                    event["ingested"] = ingested
                    ecs = record.get("ecs")
                    if type(ecs) is dict:
                        ecs.setdefault("version", ECS_VERSION)
                    else:
                        record["ecs"] = {"version": ECS_VERSION}
                    if "agent" not in record:
                        record["agent"] = {"type": AGENT_TYPE, "name": host_name}
                    state = states.get(name, _UNKNOWN)
                    if state is _UNKNOWN:
                        state = states[name] = state_of(name)
                    if state is not None:
                        health = record.get("health")
                        if type(health) is not dict:
                            record["health"] = health = {} if health is None else {"value": health}
                        health.setdefault("state", state)
                else:
                    record = stamp_ingest(record, message, batch)
                    event = record["event"]
                # route: the stream of a (topic, service, metric kind) once per batch, while it is the
                # service's own and known (a catch-all is counted per record, so never remembered)
                metric = event.get("kind") == "metric"
                route_hit = None if is_health else routes.get((topic, name, metric))
                if route_hit is None:
                    stream = route(record, message, batch)
                    if not is_health:
                        data_stream = record["data_stream"]
                        type_, dataset = data_stream["type"], data_stream["dataset"]
                        if stream in known and stream == stream_name(type_, service_dataset(name), ns):
                            routes[(topic, name, metric)] = (stream, type_, dataset)
                else:
                    stream, type_, dataset = route_hit
                    record["data_stream"] = {"type": type_, "dataset": dataset, "namespace": ns}
                    event["dataset"] = dataset
                doc = dumps(record)
                # record_id: the Kafka coordinates, unless the record has its own event.id
                own = event.get("id")
                doc_id = record_id(record, message, tid) if type(own) is str and own else f"{id_base}{offset}{id_tail}"
                head = heads.get(stream)
                if head is None:
                    head = heads[stream] = action_head(stream)
                id_json = dumps(doc_id if len(doc_id) <= SHORT_ID else bounded_id(doc_id))
            except Exception as exc:  # any value anywhere (integers beyond 64 bit, nesting, ...): never the batch
                dead.append(DeadLetter(message, raw, "transform", failure_reason(exc), "decode"))
                continue
            line = len(arena)
            arena += head
            arena += id_json
            arena += b"}}\n"
            start = len(arena)
            arena += doc
            arena += b"\n"
            action = Action(doc_id, stream, b"", Provenance(message, raw, name))
            spans.append((action, line, start, start + len(doc)))
            actions.append(action)
        if observe is None:
            continue
        if counted and not is_health:
            if offset > floor:  # observe's redelivery rule: each offset once
                floor = offset
                if type_ == LOGS and type(ts) is str:  # metric documents are no records of a service's traffic
                    prefix = ts[:width] if ts <= ingested else ts  # a later one is clamped alone
                    entry = counts.get((name, prefix))
                    if entry is None:
                        counts[(name, prefix)] = [1, ts, ts]
                    else:
                        entry[0] += 1
                        if ts > entry[2]:
                            entry[2] = ts
                        elif ts < entry[1]:
                            entry[1] = ts
                    if record is not None:  # the Python path's record (the compiled part said these)
                        level, code = _error_signals(record)
                    if code is not None or (level not in NOT_ERRORS and type(level) is str):
                        key = (name, prefix, level, code)
                        maybe[key] = maybe.get(key, 0) + 1
            continue
        if uptos:  # the records before a probe result are counted before it is observed (it may drop a stream)
            _hand_counts(observe_counts, uptos, counts, maybe, out)
        try:
            docs: list[Doc] = observe(record, message)
            if docs:
                actions += own_actions(docs)
        except Exception as exc:
            out.observe_failures.append(failure_reason(exc))
        states.clear()  # a probe result may have changed a service's state
        if native is not None:
            native.states_changed()
    if counted and not is_health:
        uptos[(topic, partition)] = floor
    if uptos:
        _hand_counts(observe_counts, uptos, counts, maybe, out)
    view = memoryview(arena)
    for action, line, start, end in spans:
        action.source = view[start:end]
        action.line = view[line:end + 1]


def _error_signals(record: Record) -> tuple[Any, Any]:
    """The record's level and its status code when 500 or more (else None): what may make it an error."""
    log = record.get("log")
    level = log.get("level") if type(log) is dict else None
    http = record.get("http")
    code = None
    if type(http) is dict:
        response = http.get("response")
        if type(response) is dict:
            code = response.get("status_code")
            if type(code) is not int or code < 500:
                code = None
    return level, code


def _hand_counts(observe_counts: Callable[..., None], uptos: dict[tuple[str, int], int],
                 counts: dict[tuple[str, str], list[Any]], maybe: dict[tuple[str, str, Any, Any], int],
                 out: Prepared) -> None:
    """The counts gathered so far to the monitor, and a fresh start for the rest of the batch."""
    try:
        observe_counts(uptos, counts, maybe)
    except Exception as exc:
        out.observe_failures.append(failure_reason(exc))
    for gathered in (uptos, counts, maybe):
        gathered.clear()


def failure_reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]


def enrich_route_general(record: Record, message: Message, batch: Batch) -> tuple[Record, str]:
    """The general path: every step of the chain, then route."""
    record = enrich(record, message, batch)
    return record, route(record, message, batch)

