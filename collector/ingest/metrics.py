"""The ingest API's counters, rendered as Prometheus text at GET /metrics."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from collector.contract.promtext import Histogram, metric, render, single

PRODUCE_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class IngestStats:
    requests: Counter[tuple[str, int]] = field(default_factory=Counter)  # (endpoint, status)
    accepted: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    body_bytes: int = 0
    produce: Histogram = field(default_factory=lambda: Histogram(PRODUCE_BUCKETS_S))

    def prometheus(self, kafka_up: bool, in_flight_bytes: int, in_flight_records: int, kafka_failures: int,
                   bytes_in_process: int) -> str:
        return render([
            *single("ingest_kafka_up", "gauge",
                    "1 while records are being acknowledged by Kafka (0 after a failure).", int(kafka_up)),
            *single("ingest_kafka_failures_total", "counter",
                    "Deliveries or connections to Kafka that failed.", kafka_failures),
            *single("ingest_in_flight_bytes", "gauge", "Record bytes waiting for Kafka's acknowledgement.",
                    in_flight_bytes),
            *single("ingest_request_bytes_in_process", "gauge", "Request bytes held from reading the body to "
                    "the answer (bounded by INGEST_MAX_IN_FLIGHT_BYTES).", bytes_in_process),
            *single("ingest_in_flight_records", "gauge", "Records waiting for Kafka's acknowledgement.",
                    in_flight_records),
            *single("ingest_body_bytes_total", "counter", "Request body bytes received (as sent, before gunzip).",
                    self.body_bytes),
            *metric("ingest_requests_total", "counter", "Requests by endpoint and status code.",
                    [({"endpoint": ep, "code": code}, n) for (ep, code), n in sorted(self.requests.items())]),
            *metric("ingest_records_accepted_total", "counter", "Records acknowledged by Kafka (answered 202).",
                    [({"endpoint": ep}, n) for ep, n in sorted(self.accepted.items())]),
            *metric("ingest_records_rejected_total", "counter",
                    "Records refused by validation (listed in the 202 answer).",
                    [({"endpoint": ep}, n) for ep, n in sorted(self.rejected.items())]),
            *self.produce.lines("ingest_produce_seconds",
                                "Time from handing a request's records to Kafka to the last ack."),
        ])
