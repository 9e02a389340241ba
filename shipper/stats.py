"""The shipper's counters and histogram, rendered as Prometheus text by the ops endpoint."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

BULK_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _label(value: str) -> str:
    """A Prometheus label value: backslash, quote and newline escaped (error types come from the engine)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@dataclass
class Stats:
    consumed: int = 0
    indexed: int = 0
    duplicates: int = 0  # 409 on create: already in the index from an earlier delivery
    dead_lettered: int = 0
    retried: int = 0
    batches: int = 0
    item_errors: Counter[str] = field(default_factory=Counter)
    bulk_buckets: list[int] = field(default_factory=lambda: [0] * (len(BULK_BUCKETS_S) + 1))
    bulk_sum_s: float = 0.0
    bulk_count: int = 0
    lag: dict[str, int] = field(default_factory=dict)  # "topic/partition" -> records behind

    def observe_bulk(self, seconds: float) -> None:
        self.bulk_sum_s += seconds
        self.bulk_count += 1
        for i, bound in enumerate(BULK_BUCKETS_S):
            if seconds <= bound:
                self.bulk_buckets[i] += 1
                return
        self.bulk_buckets[-1] += 1

    def prometheus(self, ready: bool) -> str:
        lines = [
            "# HELP shipper_up 1 while consuming and the engine answers.",
            "# TYPE shipper_up gauge",
            f"shipper_up {int(ready)}",
        ]
        for name, value, help_ in (
            ("consumed", self.consumed, "Records read from Kafka."),
            ("indexed", self.indexed, "Records written to the engine (including ones already there)."),
            ("duplicates", self.duplicates, "Records the engine already had (409 on create); counted in indexed."),
            ("dead_lettered", self.dead_lettered, "Records sent to the dead-letter topic and stream."),
            ("retried", self.retried, "Bulk items retried after 429, 5xx or a connection error."),
        ):
            lines += [f"# HELP shipper_{name}_total {help_}", f"# TYPE shipper_{name}_total counter",
                      f"shipper_{name}_total {value}"]
        lines += ["# HELP shipper_item_errors_total Per-item bulk errors by type.",
                  "# TYPE shipper_item_errors_total counter"]
        lines += [f'shipper_item_errors_total{{type="{_label(kind)}"}} {n}'
                  for kind, n in sorted(self.item_errors.items())]
        lines += ["# HELP shipper_bulk_seconds Bulk request latency.", "# TYPE shipper_bulk_seconds histogram"]
        cumulative = 0
        for bound, n in zip((*BULK_BUCKETS_S, float("inf")), self.bulk_buckets, strict=True):
            cumulative += n
            le = "+Inf" if bound == float("inf") else repr(bound)
            lines.append(f'shipper_bulk_seconds_bucket{{le="{le}"}} {cumulative}')
        lines += [f"shipper_bulk_seconds_sum {self.bulk_sum_s:.6f}", f"shipper_bulk_seconds_count {self.bulk_count}"]
        lines += ["# HELP shipper_consumer_lag Records behind the high watermark, per partition.",
                  "# TYPE shipper_consumer_lag gauge"]
        for tp, lag in sorted(self.lag.items()):
            topic, _, partition = tp.rpartition("/")
            lines.append(f'shipper_consumer_lag{{topic="{_label(topic)}",partition="{partition}"}} {lag}')
        return "\n".join(lines) + "\n"
