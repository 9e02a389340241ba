"""The official OpenTelemetry Python SDK with `opentelemetry-exporter-otlp-proto-http` (or `-proto-grpc`
when OTEL_EXPORTER_OTLP_PROTOCOL=grpc), configured by environment variables only
(OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS, OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES),
logging through the standard `logging` module as an application would.

usage: python python_client.py <count> <id-prefix>; prints the export results as JSON.
"""

from __future__ import annotations

import json
import logging
import os
import sys

if os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") == "grpc":
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
else:
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter  # type: ignore[assignment]
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter  # type: ignore[assignment]
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

results: list[dict[str, str]] = []


def watched(exporter, signal):  # type: ignore[no-untyped-def]
    export = exporter.export

    def export_and_note(*args, **kwargs):  # type: ignore[no-untyped-def]
        result = export(*args, **kwargs)
        results.append({"signal": signal, "result": getattr(result, "name", str(result))})
        return result

    exporter.export = export_and_note
    return exporter


def main(count: int, prefix: str) -> None:
    resource = Resource.create()
    provider = LoggerProvider(resource=resource)
    provider.add_log_record_processor(BatchLogRecordProcessor(watched(OTLPLogExporter(), "logs"),
                                                              max_export_batch_size=100))
    log = logging.getLogger("python-client")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    log.addHandler(LoggingHandler(logger_provider=provider))
    for i in range(count):
        if i % 10 == 9:
            try:
                raise ValueError("bad order")
            except ValueError:
                log.exception("python record %d failed", i, extra={"id": f"{prefix}-{i}"})
        else:
            log.warning("python record %d", i, extra={"id": f"{prefix}-{i}", "http.response.status_code": 201})
    provider.shutdown()

    reader = PeriodicExportingMetricReader(watched(OTLPMetricExporter(), "metrics"), export_interval_millis=3_600_000)
    meters = MeterProvider(resource=resource, metric_readers=[reader])
    meter = meters.get_meter("python-client")
    meter.create_counter("orders.placed", unit="1").add(5, {"id": f"{prefix}-counter"})
    histogram = meter.create_histogram("http.server.request.duration", unit="s")
    for value in (0.01, 0.02, 0.03, 0.2, 1.5):
        histogram.record(value, {"id": f"{prefix}-histogram"})
    meter.create_gauge("queue.depth", unit="1").set(7, {"id": f"{prefix}-gauge"})
    meters.shutdown()
    print(json.dumps(results))


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
