"""The shipper's counters and histogram, rendered as Prometheus text by the ops endpoint."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from collector.contract.promtext import Histogram, metric, single


@dataclass
class Stats:
    consumed: int = 0
    indexed: int = 0
    duplicates: int = 0  # 409 on create: already in the index from an earlier delivery
    dead_lettered: int = 0
    retried: int = 0
    batches: int = 0
    foreign_families: int = 0  # stream families written under another producer's template (none of ours put)
    item_errors: Counter[str] = field(default_factory=Counter)
    bulk: Histogram = field(default_factory=Histogram)
    lag: dict[str, int] = field(default_factory=dict)  # "topic/partition" -> records behind

    def snapshot(self) -> dict[str, float]:
        """The counters the pipeline document reports per interval (as differences of two snapshots)."""
        return {"consumed": self.consumed, "indexed": self.indexed, "dead_lettered": self.dead_lettered,
                "retried": self.retried, "bulk_sum_s": self.bulk.sum, "bulk_count": self.bulk.count}

    def prometheus(self, ready: bool) -> list[str]:
        lines = single("shipper_up", "gauge", "1 while consuming and the engine answers.", int(ready))
        for name, value, help_ in (
            ("consumed", self.consumed, "Records read from Kafka."),
            ("indexed", self.indexed, "Records written to the engine (including ones already there)."),
            ("duplicates", self.duplicates, "Records the engine already had (409 on create); counted in indexed."),
            ("dead_lettered", self.dead_lettered, "Records sent to the dead-letter topic and stream."),
            ("retried", self.retried, "Bulk items retried after 429, 5xx or a connection error."),
            ("foreign_stream_families", self.foreign_families,
             "Stream families another producer's template or stream already had: written under theirs."),
        ):
            lines += single(f"shipper_{name}_total", "counter", help_, value)
        lines += metric("shipper_item_errors_total", "counter", "Per-item bulk errors by type.",
                        [({"type": kind}, n) for kind, n in sorted(self.item_errors.items())])
        lines += self.bulk.lines("shipper_bulk_seconds", "Bulk request latency.")
        samples = []
        for tp, lag in sorted(self.lag.items()):
            topic, _, partition = tp.rpartition("/")
            samples.append(({"topic": topic, "partition": partition}, lag))
        lines += metric("shipper_consumer_lag", "gauge", "Records behind the high watermark, per partition.", samples)
        return lines
