"""Stage 4, pure: which data stream each record lands in."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from collector.contract.streams import is_own_dataset
from shipper.context import Batch, TopicRoles, TransformSettings
from shipper.provenance import Meta
from shipper.route import route as route_in

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def route(record: dict[str, Any], topic: str, namespace: str, roles: TopicRoles | None = None) -> str:
    settings = TransformSettings(host_name="h", namespace=namespace, roles=roles or TopicRoles())
    return route_in(record, Meta(topic, 0, 0, 0), Batch(settings, NOW))


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
    ("x-metrics", {}, "logs-api_service-default"),  # a name ending in "metrics" is no role
])
def test_type_and_product_streams(topic: str, fields: dict[str, Any], stream: str) -> None:
    assert route(_record(**fields), topic, "default") == stream


def test_topic_roles_come_from_the_settings() -> None:
    roles = TopicRoles(metrics=frozenset({"m1", "m2"}), health=frozenset({"probes"}))
    assert route(_record(), "m2", "default", roles) == "metrics-api_service-default"
    assert route(_record(), "probes", "default", roles) == "logs-elk.health-default"
    assert route(_record(), "elk-health", "default", roles) == "logs-api_service-default"
    assert route(_record(), "elk-metrics", "default", roles) == "logs-api_service-default"


@pytest.mark.parametrize("fields", [
    {"event": {"dataset": "elk.health"}},
    {"data_stream": {"type": "logs", "dataset": "elk.alerts"}},
    {"data_stream": {"type": "logs", "dataset": "elk.deadletter"}},
    {"data_stream": {"type": "metrics", "dataset": "elk.pipeline"}},
    {"data_stream": {"type": "logs", "dataset": "ELK.health", "namespace": "default"}},
])
def test_a_record_never_lands_in_the_products_own_streams(fields: dict[str, Any]) -> None:
    assert route(_record(**fields), "elk-logs", "default") == "logs-api_service-default"


@pytest.mark.parametrize(("service", "stream"), [
    ("elk.health", "logs-elk_health-default"), ("ELK.alerts", "logs-elk_alerts-default"),
    ("elk.", "logs-elk-default"), ("elk", "logs-elk-default"),
])
def test_a_service_named_like_a_product_stream_gets_a_stream_of_its_own(service: str, stream: str) -> None:
    name = route(_record(service), "elk-logs", "default")
    assert name == stream
    assert not is_own_dataset(name.split("-")[1])


def test_a_record_cannot_pick_an_arbitrary_stream() -> None:
    record = _record(data_stream={"type": "logs", "dataset": "../../etc", "namespace": "other"})
    assert route(record, "elk-logs", "default") == "logs-api_service-default"
