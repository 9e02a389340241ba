"""Kafka topics, datasets and data-stream naming (`{type}-{dataset}-{namespace}`).

Rules from Elastic's data stream naming scheme (ecs.md in shared/reference): dataset and
namespace are lower-case, without `-`, the characters index names forbid
(`\\ / * ? " < > | , # :`), white space and control characters; dataset and namespace at most
100 bytes each, so the whole name, with the `.ds-...-yyyy.mm.dd-000001` backing-index decoration, stays under the
engines' 255-byte limit on index names.
"""

from __future__ import annotations

import re

# Kafka topics (defaults; every component lets ops override them)
TOPIC_LOGS = "elk-logs"
TOPIC_METRICS = "elk-metrics"
TOPIC_HEALTH = "elk-health"
TOPIC_DEAD_LETTER = "elk-dead-letter"
TOPIC_ALERTS = "elk-alerts"

LOGS = "logs"
METRICS = "metrics"

# Datasets of the product's own streams; only the shipper writes them
DATASET_HEALTH = "elk.health"
DATASET_ALERTS = "elk.alerts"
DATASET_DEAD_LETTER = "elk.deadletter"
DATASET_PIPELINE = "elk.pipeline"
OWN_DATASET_PREFIX = "elk."
OWN_DATASETS = frozenset({DATASET_HEALTH, DATASET_ALERTS, DATASET_DEAD_LETTER, DATASET_PIPELINE})
# `event.provider` of every document the shipper writes itself (health transitions, alerts, dead
# letters, its metrics). A record from Kafka never keeps it, so a query that requires it (the
# restore of health state at start) reads only what the shipper wrote.
OWN_WRITER = "elk-shipper"
OWN_WRITER_FIELD = "event.provider"

# The Kafka header of a stream share: counts of a service's log records that one shipper replica
# sends on to the replica that owns the service's stream, on a logs topic (shipper/health/shares.py).
# A message with it is never indexed as a log record: it is merged if it also carries the own-writer
# marker as a plain string and is a valid share, else dead-lettered. No intake writes Kafka headers.
SHARE_HEADER = "elk-stream-share"

DEFAULT_NAMESPACE = "default"
GENERIC_DATASET = "generic"
# The catch-all of the services' streams: where records go once the shipper's cap on streams is
# reached (shipper/streamcap.py). A service stream like any other (the data views include it).
DATASET_OVERFLOW = "overflow"

_DISALLOWED = re.compile(r'[\\/*?"<>|,#:\-\s\x00-\x1f\x7f]+')
MAX_PART_BYTES = 100


def _clean(name: str) -> str:
    cleaned = _DISALLOWED.sub("_", name.strip().lower()).strip("_.")
    raw = cleaned.encode()
    if len(raw) > MAX_PART_BYTES:  # bytes, not characters: a multi-byte name must fit too
        cleaned = raw[:MAX_PART_BYTES].decode(errors="ignore").strip("_.")
    return cleaned


def sanitize_dataset(name: str) -> str:
    """A service name as a dataset: `api-service` -> `api_service`; unusable -> `generic` (ECS default)."""
    return _clean(name) or GENERIC_DATASET


def sanitize_namespace(name: str) -> str:
    return _clean(name) or DEFAULT_NAMESPACE


def is_own_dataset(dataset: str) -> bool:
    """The product's own streams (`elk.*`): records from outside may never be routed there."""
    return dataset.strip().lower().startswith(OWN_DATASET_PREFIX)


def is_own_written(source: object) -> bool:
    """A document the shipper wrote itself: `event.provider` is exactly OWN_WRITER, a plain string.
    The restore queries ask for the marker with a term query, which also matches an array holding
    it (`["elk-shipper"]`), so every restored hit is checked with this as well."""
    if type(source) is not dict:
        return False
    event = source.get("event")
    return type(event) is dict and type(event.get("provider")) is str and event["provider"] == OWN_WRITER


def is_share(headers: object) -> bool:
    """A Kafka message's headers ((key, value) pairs) mark it as a stream share (SHARE_HEADER)."""
    if not isinstance(headers, list | tuple):
        return False
    return any(type(h) is tuple and len(h) == 2 and h[0] == SHARE_HEADER for h in headers)


def data_stream_name(type_: str, dataset: str, namespace: str = DEFAULT_NAMESPACE) -> str:
    return f"{type_}-{sanitize_dataset(dataset)}-{sanitize_namespace(namespace)}"


def data_stream_pattern(type_: str, dataset: str = "*", namespace: str = "*") -> str:
    """An index pattern over streams: `logs-*-*`, `logs-elk.health-*`."""
    ds = dataset if dataset == "*" else sanitize_dataset(dataset)
    ns = namespace if namespace == "*" else sanitize_namespace(namespace)
    return f"{type_}-{ds}-{ns}"


def service_streams(type_: str) -> tuple[str, ...]:
    """The patterns over the services' streams only, the product's own `elk.*` left out: the data views
    and the alerting rules that count service records use exactly these (a `-` entry excludes what the
    entries before it matched, in Elasticsearch's and OpenSearch's multi-target syntax)."""
    return (data_stream_pattern(type_), f"-{type_}-{OWN_DATASET_PREFIX}*-*")
