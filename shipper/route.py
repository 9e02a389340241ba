"""Stage 4: which data stream a record goes to: `{type}-{dataset}-{namespace}`.

Service logs go to `logs-<service>-<ns>`, metrics to `metrics-<service>-<ns>`, probe results
and transitions to the product's health stream. The record's data_stream.* and event.dataset
fields are set to match, as ECS asks.
"""

from __future__ import annotations

import functools
from typing import Any

from collector.contract.streams import (
    DATASET_ALERTS,
    DATASET_DEAD_LETTER,
    DATASET_HEALTH,
    TOPIC_HEALTH,
    TOPIC_METRICS,
    sanitize_dataset,
    sanitize_namespace,
)

Record = dict[str, Any]

# a handful of service names over millions of records: sanitise each once
_dataset = functools.lru_cache(maxsize=4096)(sanitize_dataset)
_namespace = functools.lru_cache(maxsize=256)(sanitize_namespace)

_PRODUCT_DATASETS = {DATASET_HEALTH, DATASET_ALERTS, DATASET_DEAD_LETTER, "elk.pipeline"}


def route(record: Record, topic: str, namespace: str) -> str:
    event = record.get("event")
    if type(event) is not dict:
        event = record["event"] = {}
    stream = record.get("data_stream")
    claimed = stream.get("dataset") if type(stream) is dict else None
    if claimed in _PRODUCT_DATASETS:
        assert isinstance(stream, dict)
        # only the two types our templates cover: anything else would land unmapped
        type_ = "metrics" if stream.get("type") == "metrics" else "logs"
        dataset = str(claimed)
    elif topic == TOPIC_HEALTH or event.get("dataset") == DATASET_HEALTH:
        type_, dataset = "logs", DATASET_HEALTH
    elif event.get("kind") == "metric" or topic == TOPIC_METRICS or topic.endswith("metrics"):
        type_, dataset = "metrics", _dataset(str(record["service"]["name"]))
    else:
        type_, dataset = "logs", _dataset(str(record["service"]["name"]))
    ns = _namespace(namespace)
    record["data_stream"] = {"type": type_, "dataset": dataset, "namespace": ns}
    event["dataset"] = dataset
    return f"{type_}-{dataset}-{ns}"
