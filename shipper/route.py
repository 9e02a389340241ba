"""Stage 4: which data stream a record goes to: `{type}-{dataset}-{namespace}`.

Service logs go to `logs-<service>-<ns>`, metrics to `metrics-<service>-<ns>`, probe results
and transitions to the product's health stream. The record's data_stream.* and event.dataset
fields are set to match, as ECS asks.
"""

from __future__ import annotations

from typing import Any

from collector.schema import (
    DATASET_ALERTS,
    DATASET_DEAD_LETTER,
    DATASET_HEALTH,
    TOPIC_HEALTH,
    TOPIC_METRICS,
    sanitize_dataset,
    sanitize_namespace,
)

Record = dict[str, Any]

_PRODUCT_DATASETS = {DATASET_HEALTH, DATASET_ALERTS, DATASET_DEAD_LETTER, "elk.pipeline"}


def route(record: Record, topic: str, namespace: str) -> str:
    event = record.get("event") if isinstance(record.get("event"), dict) else {}
    stream = record.get("data_stream") if isinstance(record.get("data_stream"), dict) else {}
    assert isinstance(event, dict) and isinstance(stream, dict)
    kind = event.get("kind")
    if stream.get("dataset") in _PRODUCT_DATASETS:
        type_ = str(stream.get("type") or "logs")
        dataset = str(stream["dataset"])
    elif topic == TOPIC_HEALTH or event.get("dataset") == DATASET_HEALTH:
        type_, dataset = "logs", DATASET_HEALTH
    elif kind == "metric" or topic == TOPIC_METRICS or topic.endswith("metrics"):
        type_, dataset = "metrics", sanitize_dataset(record["service"]["name"])
    else:
        type_, dataset = "logs", sanitize_dataset(record["service"]["name"])
    ns = sanitize_namespace(namespace)
    record["data_stream"] = {"type": type_, "dataset": dataset, "namespace": ns}
    event["dataset"] = dataset
    record["event"] = event
    return f"{type_}-{dataset}-{ns}"
