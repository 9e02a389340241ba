"""Stage 4: which data stream a record goes to: `{type}-{dataset}-{namespace}`.

The topic's role decides (settings `SHIPPER_HEALTH_TOPICS`, `SHIPPER_METRICS_TOPICS`): probe results
from a health topic go to the product's health stream; records from a metrics topic, or any with
`event.kind: metric`, to `metrics-<service>-<ns>`; everything else to `logs-<service>-<ns>`. What a
record claims in its own `data_stream.*` or `event.dataset` is overwritten: the product's own
streams (`elk.*`, see `contract.streams.is_own_dataset`) are written by the shipper alone, so a
service whose name would make an `elk.` dataset gets `elk_...` instead.
"""

from __future__ import annotations

import functools
from typing import Any

from collector.contract.streams import (
    DATASET_HEALTH,
    LOGS,
    METRICS,
    OWN_DATASET_PREFIX,
    data_stream_name,
    is_own_dataset,
    sanitize_dataset,
    sanitize_namespace,
)
from shipper.context import Batch
from shipper.provenance import Message

Record = dict[str, Any]


@functools.lru_cache(maxsize=4096)  # a handful of service names over millions of records
def service_dataset(service: str) -> str:
    dataset = sanitize_dataset(service)
    if is_own_dataset(dataset):
        return "elk_" + dataset[len(OWN_DATASET_PREFIX):]
    return dataset


stream_name = functools.lru_cache(maxsize=4096)(data_stream_name)
namespace_of = functools.lru_cache(maxsize=256)(sanitize_namespace)


def route(record: Record, message: Message, batch: Batch) -> str:
    """The stream's name; the record's data_stream.* and event.dataset are set to match, as ECS asks.
    A service stream the cap does not admit (shipper/streamcap.py) becomes the type's catch-all."""
    event = record.get("event")
    if type(event) is not dict:
        event = record["event"] = {}
    topic = message.topic
    settings = batch.settings
    roles = settings.roles
    ns = namespace_of(settings.namespace)
    if topic in roles.health:
        type_, dataset = LOGS, DATASET_HEALTH
        name = stream_name(type_, dataset, ns)
    else:
        type_ = METRICS if topic in roles.metrics or event.get("kind") == "metric" else LOGS
        dataset = service_dataset(str(record["service"]["name"]))
        name = stream_name(type_, dataset, ns)
        if name not in settings.streams.known:  # the hot path is this one set lookup
            name, dataset = settings.streams.admit(type_, dataset, ns)
    record["data_stream"] = {"type": type_, "dataset": dataset, "namespace": ns}
    event["dataset"] = dataset
    return name
