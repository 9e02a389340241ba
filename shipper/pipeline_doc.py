"""The shipper's own metrics over an interval, as a document of `metrics-elk.pipeline-<ns>`."""

from __future__ import annotations

from datetime import datetime

from collector.contract.ecs import ECS_VERSION
from collector.contract.streams import DATASET_PIPELINE, METRICS, sanitize_namespace
from collector.contract.timefmt import format_ts
from shipper.monitor import Doc
from shipper.stats import Stats

SERVICE = "elk-shipper"


def pipeline_doc(stats: Stats, last: dict[str, float], *, host: str, namespace: str, now: datetime,
                 window_s: float) -> Doc:
    """`last` is the stats snapshot at the interval's start; the document holds the differences."""
    current = stats.snapshot()
    delta = {k: v - last.get(k, 0) for k, v in current.items()}
    doc = {
        "@timestamp": format_ts(now),
        "ecs": {"version": ECS_VERSION},
        "event": {"kind": "metric", "dataset": DATASET_PIPELINE},
        "service": {"name": SERVICE, "node": {"name": host}},
        "shipper": {
            "consumed": int(delta["consumed"]),
            "indexed": int(delta["indexed"]),
            "dead_lettered": int(delta["dead_lettered"]),
            "retried": int(delta["retried"]),
            "lag": sum(stats.lag.values()),
            "records_per_s": round(delta["indexed"] / window_s, 2) if window_s > 0 else 0.0,
            "bulk_latency_ms": round(1000 * delta["bulk_sum_s"] / delta["bulk_count"], 2)
            if delta["bulk_count"] else 0.0,
        },
        "data_stream": {"type": METRICS, "dataset": DATASET_PIPELINE, "namespace": sanitize_namespace(namespace)},
    }
    return f"{host}-{now.timestamp():.0f}", doc
