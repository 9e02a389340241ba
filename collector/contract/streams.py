"""Kafka topics, datasets and data-stream naming (`{type}-{dataset}-{namespace}`).

Rules from Elastic's data stream naming scheme (ecs.md in shared/reference): dataset and
namespace are lower-case, without `-` and the characters index names forbid
(`\\ / * ? " < > | , # :` and space); dataset at most 100 and namespace at most 100 bytes, so the
whole name, with the `.ds-...-yyyy.mm.dd-000001` backing-index decoration, stays under the
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

DEFAULT_NAMESPACE = "default"
GENERIC_DATASET = "generic"

_DISALLOWED = re.compile(r'[\\/*?"<>| ,#:\-]+')
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


def data_stream_name(type_: str, dataset: str, namespace: str = DEFAULT_NAMESPACE) -> str:
    return f"{type_}-{sanitize_dataset(dataset)}-{sanitize_namespace(namespace)}"


def data_stream_pattern(type_: str, dataset: str = "*", namespace: str = "*") -> str:
    """An index pattern over streams: `logs-*-*`, `logs-elk.health-*`."""
    ds = dataset if dataset == "*" else sanitize_dataset(dataset)
    ns = namespace if namespace == "*" else sanitize_namespace(namespace)
    return f"{type_}-{ds}-{ns}"


def topic_kind(topic: str) -> str:
    """What a topic carries, by its name: `health` (probe and /v1/health results), `metrics` or `logs`.

    The defaults are TOPIC_HEALTH and TOPIC_METRICS; renamed topics keep the word (`health-prod`,
    `prod-metrics`). The shipper's health owner uses it to know which partition holds a service's
    health results and which its log stream.
    """
    if topic == TOPIC_HEALTH or "health" in topic:
        return "health"
    if topic == TOPIC_METRICS or topic.endswith("metrics"):
        return METRICS
    return LOGS
