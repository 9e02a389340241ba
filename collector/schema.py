"""The record contract shared by the library, the ingest API, the prober and the shipper.

Everything that crosses Kafka is one ECS JSON object per message. These names are the
single place where topics, data-stream naming and the ECS version are decided.
"""

from __future__ import annotations

import re

ECS_VERSION = "8.11.0"

# Kafka topics (defaults; every component lets ops override them)
TOPIC_LOGS = "elk-logs"
TOPIC_METRICS = "elk-metrics"
TOPIC_HEALTH = "elk-health"
TOPIC_DEAD_LETTER = "elk-dead-letter"
TOPIC_ALERTS = "elk-alerts"

# Datasets of the product's own streams (`logs-<dataset>-<namespace>`)
DATASET_HEALTH = "elk.health"
DATASET_ALERTS = "elk.alerts"
DATASET_DEAD_LETTER = "elk.deadletter"
DATASET_PIPELINE = "elk.pipeline"

DEFAULT_NAMESPACE = "default"

_DISALLOWED = re.compile(r'[\\/*?"<>| ,#:\-]+')
_MAX_PART = 100


def sanitize_dataset(name: str) -> str:
    """A service name as a data-stream dataset: lower-case, no `-` or forbidden characters.

    `api-service` -> `api_service`. Empty or unusable input gives `generic`, the ECS default.
    """
    cleaned = _DISALLOWED.sub("_", name.strip().lower()).strip("_.")
    return cleaned[:_MAX_PART] or "generic"


def sanitize_namespace(name: str) -> str:
    cleaned = _DISALLOWED.sub("_", name.strip().lower()).strip("_.")
    return cleaned[:_MAX_PART] or DEFAULT_NAMESPACE


def data_stream_name(type_: str, dataset: str, namespace: str = DEFAULT_NAMESPACE) -> str:
    return f"{type_}-{sanitize_dataset(dataset)}-{sanitize_namespace(namespace)}"
