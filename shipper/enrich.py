"""Stage 3: normalise a decoded record to ECS and enrich it, as a chain of processors.

Every step has one signature, `(record, message, batch) -> record`, in the manner of structlog
processors: the record (a plain dict, changed in place where that is cheaper), the Kafka message
it came from, and the batch context (settings and `now`). `enrich` runs `STEPS` in order; each
step is tested alone, without I/O. A step may meet any JSON value anywhere: it never assumes a
type it has not checked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from collector.contract.ecs import ECS_VERSION
from collector.contract.levels import NUMERIC
from collector.contract.levels import normalize_level as canonical_level
from collector.contract.names import split_instance
from collector.contract.streams import OWN_WRITER
from collector.contract.timefmt import ISO_MS, format_ts, parse_ts
from shipper.context import Batch
from shipper.dotted import dotted_key_count, expand_dotted, expand_top_level, top_level_only
from shipper.provenance import Message, Origin

Record = dict[str, Any]
Step = Callable[[Record, Message, Batch], Record]

AGENT_TYPE = "elk-shipper"
INVALID_MAX = 256  # characters of an unusable value kept in labels


def _keep_invalid(record: Record, label: str, value: Any) -> None:
    """An unusable value is kept, as text, in labels (so it stays visible) instead of failing the mapping."""
    labels = record.setdefault("labels", {})
    if type(labels) is dict:
        labels[label] = str(value)[:INVALID_MAX]


def expand_keys(record: Record, message: Message, batch: Batch) -> Record:
    """Dotted keys -> objects. The raw bytes tell first whether there are any, and whether all of them
    are top-level keys (the library's records: `log.level`, `ecs.version`), so the common cases skip
    the walk or do it in place."""
    dotted = dotted_key_count(message.value or b"")
    if dotted == 0:
        return record
    if top_level_only(record, dotted):
        return expand_top_level(record)
    return expand_dotted(record)


def normalize_timestamp(record: Record, message: Message, batch: Batch) -> Record:
    """@timestamp in the wire form. An unusable or far-future one is kept in labels and replaced by
    Kafka's time (else the batch's)."""
    raw = record.get("@timestamp")
    # fast path: already in the wire form (the library's), which compares as a string
    if type(raw) is str and raw <= batch.latest and ISO_MS.fullmatch(raw):
        return record
    parsed = parse_ts(raw) if raw is not None else None
    if parsed is None or parsed > batch.now + batch.settings.max_future:
        if raw is not None:
            _keep_invalid(record, "invalid_timestamp", raw)
        kafka_ms = message.timestamp
        parsed = parse_ts(kafka_ms) if type(kafka_ms) is int and kafka_ms > 0 else None  # epoch ms
        if parsed is None:
            record["@timestamp"] = batch.ingested
            return record
    record["@timestamp"] = format_ts(parsed)
    return record


def _level(record: Record, value: Any) -> str | None:
    """The canonical level name; an unknown name is kept lower-cased, an unknown pino number as text.
    Anything else (an object, a list, a float) is no level: it moves to labels."""
    level = canonical_level(value)
    if level is not None:
        return level
    if type(value) is str:
        return value.strip().lower()
    if type(value) is int and value not in NUMERIC:
        return str(value)
    _keep_invalid(record, "invalid_level", value)
    return None


def normalize_level(record: Record, message: Message, batch: Batch) -> Record:
    """log.level (or a top-level `level`) as one of the contract's names; `msg`/`event` text as message."""
    log = record.get("log")
    if type(log) is dict:
        value = log.get("level")
        if value is not None:
            level = _level(record, value)
            if level is None:
                del log["level"]
            else:
                log["level"] = level
    elif log is None and "level" in record:
        level = _level(record, record.pop("level"))
        if level is not None:
            record["log"] = {"level": level}
    if "message" not in record:
        for alias in ("msg", "event"):
            if type(record.get(alias)) is str:
                record["message"] = record.pop(alias)
                break
    return record


def _header(message: Origin, name: str) -> str | None:
    for key, value in message.headers:
        if type(key) is str and key.lower() == name and value is not None:
            try:
                text: str = value.decode()
            except (UnicodeDecodeError, AttributeError):
                return None
            return text or None
    return None


def _set_node(service: Record, instance: str) -> None:
    node = service.setdefault("node", {})
    if type(node) is dict:
        node.setdefault("name", instance)


def _service_from(candidate: str, service: Record, batch: Batch) -> str:
    mapped = batch.settings.mapped_service(candidate)
    if mapped:
        _set_node(service, candidate)
        return mapped
    name, node = split_instance(candidate)
    if name != node:
        _set_node(service, node)
    return name or candidate


def resolve_service(record: Record, message: Message, batch: Batch) -> Record:
    """service.name from the record, else the Kafka headers or key, else the container name.

    A name found outside the record goes through the configured mapping first, then the contract's
    instance rule: `api-service-1` becomes service `api-service` with node `api-service-1`.
    """
    service = record.get("service")
    if type(service) is not dict:
        service = {} if service is None else {"value": service}
        record["service"] = service
    node = service.get("node")
    if type(node) is str:  # the instance's name, written flat
        service["node"] = {"name": node}
    name = service.get("name")
    if type(name) is not str or not name:
        container = record.get("container")
        container_name = container.get("name") if type(container) is dict else None
        candidates = (
            _header(message, "service.name"),
            _header(message, "service"),
            message.key.decode(errors="replace") if message.key else None,
            container_name if type(container_name) is str else None,
        )
        found = next((c for c in candidates if c), None)
        if name is not None and type(name) is not str:
            _keep_invalid(record, "invalid_service_name", name)
        name = _service_from(found, service, batch) if found else "unknown"
    service["name"] = name
    if message.headers:  # environment and host from the producer's headers, when the record lacks them
        environment = _header(message, "service.environment") or _header(message, "environment")
        if environment and "environment" not in service:
            service["environment"] = environment
        host_name = _header(message, "host.name") or _header(message, "host")
        host = record.get("host")
        if host_name and (host is None or (type(host) is dict and "name" not in host)):
            record["host"] = {**(host or {}), "name": host_name}
    return record


def stamp_ingest(record: Record, message: Message, batch: Batch) -> Record:
    """event.ingested, ecs.version, the shipper as agent, and the service's current health state.

    `event.provider: elk-shipper` marks the documents the shipper writes itself (health transitions,
    alerts, its metrics); a record from Kafka may not claim it, so it is dropped here, and so is a
    provider that is not text (an array may hold the marker).
    """
    event = record.get("event")
    if type(event) is not dict:
        event = {} if event is None else {"original": str(event)}
        record["event"] = event
    elif "provider" in event:
        provider = event["provider"]
        if provider == OWN_WRITER:
            _keep_invalid(record, "claimed_provider", OWN_WRITER)
            del event["provider"]
        elif type(provider) is not str and provider is not None:
            # an array or object could hold the marker where a term query finds it: only text stays
            _keep_invalid(record, "invalid_provider", provider)
            del event["provider"]
    event["ingested"] = batch.ingested
    ecs = record.get("ecs")
    if type(ecs) is dict:
        ecs.setdefault("version", ECS_VERSION)
    else:
        record["ecs"] = {"version": ECS_VERSION}
    record.setdefault("agent", {"type": AGENT_TYPE, "name": batch.settings.host_name})
    state = batch.settings.state_of(record["service"]["name"])
    if state is not None:
        health = record.get("health")
        if type(health) is not dict:
            record["health"] = health = {} if health is None else {"value": health}
        health.setdefault("state", state)
    return record


STEPS: tuple[Step, ...] = (expand_keys, normalize_timestamp, normalize_level, resolve_service, stamp_ingest)


def enrich(record: Record, message: Message, batch: Batch, steps: tuple[Step, ...] = STEPS) -> Record:
    for step in steps:
        record = step(record, message, batch)
    return record
