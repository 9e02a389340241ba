"""The ingest API's counters, rendered as Prometheus text at GET /metrics.

(`collector.metrics` aggregates per emit interval into ECS documents and resets on collect, which
is the wrong model for a scrape endpoint; the shipper renders its own text the same way.)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

PRODUCE_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@dataclass
class IngestStats:
    requests: Counter[tuple[str, int]] = field(default_factory=Counter)  # (endpoint, status)
    accepted: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    body_bytes: int = 0
    produce_buckets: list[int] = field(default_factory=lambda: [0] * (len(PRODUCE_BUCKETS_S) + 1))
    produce_sum_s: float = 0.0
    produce_count: int = 0

    def observe_produce(self, seconds: float) -> None:
        self.produce_sum_s += seconds
        self.produce_count += 1
        for i, bound in enumerate(PRODUCE_BUCKETS_S):
            if seconds <= bound:
                self.produce_buckets[i] += 1
                return
        self.produce_buckets[-1] += 1

    def prometheus(self, kafka_up: bool, in_flight_bytes: int, in_flight_records: int, kafka_failures: int,
                   bytes_in_process: int) -> str:
        lines = [
            "# HELP ingest_kafka_up 1 while records are being acknowledged by Kafka (0 after a failure).",
            "# TYPE ingest_kafka_up gauge",
            f"ingest_kafka_up {int(kafka_up)}",
            "# HELP ingest_kafka_failures_total Deliveries or connections to Kafka that failed.",
            "# TYPE ingest_kafka_failures_total counter",
            f"ingest_kafka_failures_total {kafka_failures}",
            "# HELP ingest_in_flight_bytes Record bytes waiting for Kafka's acknowledgement.",
            "# TYPE ingest_in_flight_bytes gauge",
            f"ingest_in_flight_bytes {in_flight_bytes}",
            "# HELP ingest_request_bytes_in_process Request bytes held from reading the body to the answer "
            "(bounded by INGEST_MAX_IN_FLIGHT_BYTES).",
            "# TYPE ingest_request_bytes_in_process gauge",
            f"ingest_request_bytes_in_process {bytes_in_process}",
            "# HELP ingest_in_flight_records Records waiting for Kafka's acknowledgement.",
            "# TYPE ingest_in_flight_records gauge",
            f"ingest_in_flight_records {in_flight_records}",
            "# HELP ingest_body_bytes_total Request body bytes received (as sent, before gunzip).",
            "# TYPE ingest_body_bytes_total counter",
            f"ingest_body_bytes_total {self.body_bytes}",
            "# HELP ingest_requests_total Requests by endpoint and status code.",
            "# TYPE ingest_requests_total counter",
        ]
        lines += [f'ingest_requests_total{{endpoint="{_label(ep)}",code="{code}"}} {n}'
                  for (ep, code), n in sorted(self.requests.items())]
        for name, counts, help_ in (
            ("accepted", self.accepted, "Records acknowledged by Kafka (answered 202)."),
            ("rejected", self.rejected, "Records refused by validation (listed in the 202 answer)."),
        ):
            lines += [f"# HELP ingest_records_{name}_total {help_}", f"# TYPE ingest_records_{name}_total counter"]
            lines += [f'ingest_records_{name}_total{{endpoint="{_label(ep)}"}} {n}' for ep, n in sorted(counts.items())]
        lines += ["# HELP ingest_produce_seconds Time from handing a request's records to Kafka to the last ack.",
                  "# TYPE ingest_produce_seconds histogram"]
        cumulative = 0
        for bound, n in zip((*PRODUCE_BUCKETS_S, float("inf")), self.produce_buckets, strict=True):
            cumulative += n
            le = "+Inf" if bound == float("inf") else repr(bound)
            lines.append(f'ingest_produce_seconds_bucket{{le="{le}"}} {cumulative}')
        lines += [f"ingest_produce_seconds_sum {self.produce_sum_s:.6f}",
                  f"ingest_produce_seconds_count {self.produce_count}"]
        return "\n".join(lines) + "\n"
