"""Stage 4, pure: which data stream each record lands in."""

from __future__ import annotations

from typing import Any

import pytest

from shipper.route import route


def _record(service: str = "api-service", **fields: Any) -> dict[str, Any]:
    return {"service": {"name": service}, **fields}


def test_service_logs_go_to_a_sanitized_dataset() -> None:
    record = _record("Api-Service")
    assert route(record, "elk-logs", "Prod") == "logs-api_service-prod"
    assert record["data_stream"] == {"type": "logs", "dataset": "api_service", "namespace": "prod"}
    assert record["event"]["dataset"] == "api_service"


@pytest.mark.parametrize(("topic", "fields", "stream"), [
    ("elk-metrics", {}, "metrics-api_service-default"),
    ("anything", {"event": {"kind": "metric"}}, "metrics-api_service-default"),
    ("elk-health", {}, "logs-elk.health-default"),
    ("x", {"event": {"dataset": "elk.health"}}, "logs-elk.health-default"),
    ("x", {"data_stream": {"type": "logs", "dataset": "elk.alerts"}}, "logs-elk.alerts-default"),
    ("x", {"data_stream": {"type": "logs", "dataset": "elk.deadletter"}}, "logs-elk.deadletter-default"),
    ("x", {"data_stream": {"type": "metrics", "dataset": "elk.pipeline"}}, "metrics-elk.pipeline-default"),
])
def test_type_and_product_streams(topic: str, fields: dict[str, Any], stream: str) -> None:
    assert route(_record(**fields), topic, "default") == stream


def test_a_record_cannot_pick_an_arbitrary_stream() -> None:
    record = _record(data_stream={"type": "logs", "dataset": "../../etc", "namespace": "other"})
    assert route(record, "elk-logs", "default") == "logs-api_service-default"


def test_a_claimed_product_stream_keeps_to_the_templated_types() -> None:
    record = _record(data_stream={"type": "traces", "dataset": "elk.health"})
    assert route(record, "x", "default") == "logs-elk.health-default"
