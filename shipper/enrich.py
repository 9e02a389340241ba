"""Stage 3: normalise a decoded record to ECS and enrich it.

Each step is a plain function over (record, meta) that returns the record, in the manner of
structlog processors, so each is tested without I/O and `enrich()` simply runs them in order.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, Protocol

from collector.contract.ecs import ECS_VERSION

Record = dict[str, Any]


class Origin(Protocol):
    """Where a record came from in Kafka. The Kafka message itself is one (no copy per record)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> int: ...  # epoch milliseconds, as Kafka keeps it
    @property
    def key(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


class Meta(NamedTuple):
    """An Origin built by hand (tests, replays)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None = None
    headers: Sequence[tuple[str, bytes]] = ()


@dataclass
class EnrichContext:
    host_name: str
    service_map: dict[str, str] = field(default_factory=dict)
    state_of: Callable[[str], str | None] = lambda service: None
    max_future: timedelta = timedelta(days=1)
    _patterns: list[tuple[re.Pattern[str], str]] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self._patterns = [(re.compile(f"^(?:{pattern})$"), service) for pattern, service in self.service_map.items()]

    def mapped_service(self, name: str) -> str | None:
        if name in self.service_map:
            return self.service_map[name]
        for pattern, service in self._patterns:
            if pattern.match(name):
                return service
        return None


# A key with a dot, in raw JSON: `"log.level":`. Possessive quantifiers keep the scan linear
# even for a megabyte-long string value; a backslash anywhere means "cannot tell", so walk.
_DOTTED_KEY = re.compile(rb'"[^"\\.]*+\.[^"\\]*+"\s*:')


def may_have_dotted_keys(raw: bytes) -> bool:
    """False only when the raw record certainly has no dotted key, so expand_dotted can be skipped."""
    return b"\\" in raw or _DOTTED_KEY.search(raw) is not None


# The last dot of a key and the rest of it: anchored on the (rare) dot, so counting all of them costs
# about what one _DOTTED_KEY.search does. Without a backslash no string can hold a quote, so a quote
# followed by a colon always ends a key, and each dotted key matches exactly once.
_DOTTED_KEY_END = re.compile(rb'\.[^".\\]*+"\s*:')


def dotted_key_count(raw: bytes) -> int:
    """How many keys with a dot the raw record has, at any depth; -1 when it cannot tell (a backslash)."""
    if b"\\" in raw:
        return -1
    return len(_DOTTED_KEY_END.findall(raw))


def top_level_only(record: Record, dotted: int) -> bool:
    """True when all `dotted` keys of the raw record are top-level keys of the decoded one: the nested
    objects then have none, and expand_dotted need not walk them. The collector library's records are
    such (`log.level`, `ecs.version` on top, nested objects below)."""
    return dotted > 0 and sum(1 for key in record if "." in key) == dotted


def expand_dotted(record: Record, nested: bool = True) -> Record:
    """`{"log.level": "x"}` -> `{"log": {"level": "x"}}`, recursively.

    When a name is both a leaf and an object (`{"a": 1, "a.b": 2}`) the leaf moves to `a.value`,
    the same choice in either order, so such records index instead of failing on the mapping.
    Hot path: nested objects are expanded in place and a level is rebuilt only when one of its
    own keys has a dot, so an already-nested record costs one walk and no copies; `nested=False`
    (the caller knows the nested objects have no dotted key) skips the walk below the top level.
    """
    dotted = False
    for key, value in record.items():
        if nested and type(value) is dict:
            expanded = expand_dotted(value)
            if expanded is not value:
                record[key] = expanded  # same key: the dict's size does not change while iterating
        if "." in key:
            dotted = True
    if not dotted:
        return record
    out: Record = {}
    for key, value in record.items():
        parts = key.split(".") if "." in key and not key.startswith(".") and not key.endswith(".") else [key]
        target = out
        for part in parts[:-1]:
            existing = target.get(part)
            if not isinstance(existing, dict):
                target[part] = {} if existing is None else {"value": existing}
            target = target[part]
        _merge(target, parts[-1], value)
    return out


def expand_top_level(record: Record) -> Record:
    """expand_dotted for a record whose dotted keys are all on its top level (see top_level_only), in
    place: a pop and an insert per dotted key instead of rebuilding the record, with the same result.
    When a dotted path runs into an existing key (a leaf, or the same name twice) the full rebuild
    decides, with its rules for such conflicts."""
    dotted = [key for key in record if "." in key and not key.startswith(".") and not key.endswith(".")]
    paths: list[tuple[str, list[str]]] = []
    for key in dotted:
        parts = key.split(".")
        target: Any = record
        for part in parts[:-1]:
            target = target.get(part)
            if target is None:
                break
            if type(target) is not dict:
                return expand_dotted(record, nested=False)
        else:
            if parts[-1] in target:
                return expand_dotted(record, nested=False)
        paths.append((key, parts))
    if len(dotted) > 1 and any(a != b and b.startswith(a + ".") for a in dotted for b in dotted):
        return expand_dotted(record, nested=False)
    for key, parts in paths:
        value = record.pop(key)
        target = record
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value
    return record


def _merge(target: Record, key: str, value: Any) -> None:
    existing = target.get(key)
    if existing is None:
        target[key] = value
    elif isinstance(existing, dict) and isinstance(value, dict):
        for k, v in value.items():
            _merge(existing, k, v)
    elif isinstance(existing, dict):
        _merge(existing, "value", value)
    elif isinstance(value, dict):
        target[key] = value
        _merge(value, "value", existing)
    else:
        target[key] = value


def _parse_timestamp(value: Any) -> datetime | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = value / 1000 if value > 1e11 else value  # epoch millis or seconds
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
        except ValueError:
            return None
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    return None


_ISO_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@functools.lru_cache(maxsize=8)  # event.ingested: the same `now` for a whole batch
def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def normalize_timestamp(record: Record, meta: Origin, now: datetime, ctx: EnrichContext) -> Record:
    """@timestamp in UTC. An unusable or far-future one is kept in labels and replaced by Kafka's time."""
    raw = record.get("@timestamp")
    # fast path: already UTC with millis, as the library writes it (same format, so strings compare)
    if type(raw) is str and _ISO_MS.fullmatch(raw) and raw <= _iso(now + ctx.max_future):
        return record
    parsed = _parse_timestamp(raw) if raw is not None else None
    if parsed is None or parsed > now + ctx.max_future:
        if raw is not None:
            labels = record.setdefault("labels", {})
            if isinstance(labels, dict):
                labels["invalid_timestamp"] = str(raw)[:256]
        parsed = datetime.fromtimestamp(meta.timestamp / 1000, UTC) if (meta.timestamp or 0) > 0 else now
    record["@timestamp"] = _iso(parsed)
    return record


def normalize_level(record: Record) -> Record:
    log = record.get("log")
    if isinstance(log, dict) and isinstance(log.get("level"), str):
        log["level"] = log["level"].lower()
    elif "level" in record and isinstance(record["level"], str) and not isinstance(log, dict):
        record["log"] = {"level": record.pop("level").lower()}
    if "message" not in record:
        for alias in ("msg", "event"):
            if isinstance(record.get(alias), str):
                record["message"] = record.pop(alias)
                break
    return record


def _header(meta: Origin, name: str) -> str | None:
    for key, value in meta.headers:
        if key.lower() == name:
            try:
                return value.decode()
            except UnicodeDecodeError:
                return None
    return None


_INSTANCE = re.compile(r"^(?P<service>.+?)[-_](?P<node>\d+)$")


def _set_node(service: Record, instance: str) -> None:
    node = service.setdefault("node", {})
    if isinstance(node, dict):
        node.setdefault("name", instance)


def _service_from(candidate: str, service: Record, ctx: EnrichContext) -> str:
    mapped = ctx.mapped_service(candidate)
    if mapped:
        _set_node(service, candidate)
        return mapped
    instance = _INSTANCE.match(candidate)
    if instance:
        _set_node(service, candidate)
        return instance["service"]
    return candidate


def resolve_service(record: Record, meta: Origin, ctx: EnrichContext) -> Record:
    """service.name from the record, else the Kafka key or headers, else the container name.

    A name found outside the record goes through the configured mapping first; an instance name
    like `api-service-1` becomes service `api-service` with node `api-service-1`.
    """
    service = record.get("service")
    if not isinstance(service, dict):
        service = {} if service is None else {"value": service}
        record["service"] = service
    name = service.get("name")
    if not isinstance(name, str) or not name:
        container = record.get("container")
        candidates = (
            _header(meta, "service.name"),
            _header(meta, "service"),
            meta.key.decode(errors="replace") if meta.key else None,
            container.get("name") if isinstance(container, dict) else None,
        )
        found = next((c for c in candidates if c), None)
        name = _service_from(found, service, ctx) if found else "unknown"
    service["name"] = name
    if meta.headers:  # environment and host from the producer's headers, when the record lacks them
        environment = _header(meta, "service.environment") or _header(meta, "environment")
        if environment and "environment" not in service:
            service["environment"] = environment
        host_name = _header(meta, "host.name") or _header(meta, "host")
        host = record.get("host")
        if host_name and (host is None or (isinstance(host, dict) and "name" not in host)):
            record["host"] = {**(host or {}), "name": host_name}
    return record


def stamp_ingest(record: Record, now: datetime, ctx: EnrichContext) -> Record:
    """event.ingested, ecs.version, the shipper as agent, and the service's current health state."""
    event = record.get("event")
    if not isinstance(event, dict):
        event = {} if event is None else {"original": str(event)}
        record["event"] = event
    event["ingested"] = _iso(now)
    ecs = record.get("ecs")
    if isinstance(ecs, dict):
        ecs.setdefault("version", ECS_VERSION)
    else:
        record["ecs"] = {"version": ECS_VERSION}
    record.setdefault("agent", {"type": "elk-shipper", "name": ctx.host_name})
    state = ctx.state_of(record["service"]["name"])
    if state is not None:
        health = record.get("health")
        if not isinstance(health, dict):
            record["health"] = health = {}
        health.setdefault("state", state)
    return record


def document_id(record: Record, meta: Origin) -> str:
    """The record's own id when it has one, else its place in Kafka: redelivery gives the same id."""
    event = record.get("event")
    own = event.get("id") if isinstance(event, dict) else None
    if isinstance(own, str) and 0 < len(own) <= 200:
        return own
    return f"{meta.topic}-{meta.partition}-{meta.offset}"


def enrich(record: Record, meta: Origin, now: datetime, ctx: EnrichContext, expand: bool = True,
           nested: bool = True) -> Record:
    """All steps in order; `expand=False` when the raw bytes show no dotted key (see may_have_dotted_keys),
    `nested=False` when they show dotted keys only at the top level (see top_level_only)."""
    if expand:
        record = expand_dotted(record) if nested else expand_top_level(record)
    record = normalize_timestamp(record, meta, now, ctx)
    record = normalize_level(record)
    record = resolve_service(record, meta, ctx)
    return stamp_ingest(record, now, ctx)
