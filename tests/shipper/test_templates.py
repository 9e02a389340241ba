"""Setup, pure: the templates cover exactly the product's streams, outrank the built-in and Fleet ones
there, and map every field the product writes."""

from __future__ import annotations

import pytest

from collector.contract.streams import OWN_DATASETS, data_stream_name
from shipper.engines.elasticsearch import ElasticsearchEngine
from shipper.templates import (
    COMPONENT_SETTINGS,
    ILM_POLICY,
    TOTAL_FIELDS_LIMIT,
    component_templates,
    field_types,
    ilm_policy,
    index_templates,
    split_stream,
    stream_template,
)


def test_setup_templates_cover_the_own_streams_only_and_outrank_builtins() -> None:
    templates = index_templates()
    patterns = {p for t in templates.values() for p in t["index_patterns"]}
    assert patterns == {"logs-elk.health-*", "logs-elk.alerts-*", "logs-elk.deadletter-*", "metrics-elk.pipeline-*"}
    assert {p.split("-")[1] for p in patterns} == OWN_DATASETS
    for name, body in templates.items():
        assert "@" not in name
        assert body["priority"] > 600  # built-ins 100, Fleet 200, the former broad templates 600
        assert body["data_stream"] == {}
        assert set(body["composed_of"]) <= set(component_templates())


@pytest.mark.parametrize(("stream", "parts"), [
    (data_stream_name("logs", "api-service", "default"), ("logs", "api_service", "default")),
    ("metrics-elk.pipeline-prod", ("metrics", "elk.pipeline", "prod")),
    ("logs-a-b-c", None), ("traces-a-b", None), ("logs--x", None), ("bench-rsyslog", None),
])
def test_stream_names_split_into_their_family(stream: str, parts: tuple[str, str, str] | None) -> None:
    assert split_stream(stream) == parts


def test_a_services_template_matches_its_dataset_only() -> None:
    body = stream_template("logs", "api_service")
    assert body["index_patterns"] == ["logs-api_service-*"]


def test_every_contract_field_is_mapped() -> None:
    types = field_types()
    for path in ("@timestamp", "message", "log.level", "service.name", "service.node.name", "event.ingested",
                 "health.state", "health.from", "health.to", "alert.id", "rule.id", "dead_letter.original",
                 "dead_letter.offset", "error.type", "metric.value", "shipper.lag", "shipper.bulk_latency_ms",
                 "http.response.status_code", "event.duration", "trace.id"):
        assert path in types, path
    assert types["@timestamp"] == "date"
    assert types["event.duration"] == "long"
    mappings = next(c for n, c in component_templates().items() if n != COMPONENT_SETTINGS)
    assert mappings["template"]["settings"]["index.mapping.total_fields.limit"] == TOTAL_FIELDS_LIMIT
    assert len(types) < TOTAL_FIELDS_LIMIT / 2  # room for the services' own fields


def test_ilm_only_on_elasticsearch_with_rollover_and_delete() -> None:
    phases = ilm_policy()["policy"]["phases"]
    assert "rollover" in phases["hot"]["actions"] and "delete" in phases["delete"]["actions"]
    engine = ElasticsearchEngine.__new__(ElasticsearchEngine)
    engine.lifecycle = True
    adapted = engine.adapt_index_template(index_templates()["elk-pipeline-logs-elk.health"])
    assert adapted["template"]["settings"]["index.lifecycle.name"] == ILM_POLICY
    engine.lifecycle = False
    assert "settings" not in engine.adapt_index_template(index_templates()["elk-pipeline-logs-elk.health"])["template"]


async def test_retention_setting_is_the_ilm_delete_age() -> None:
    from typing import Any

    from shipper.config import ShipperSettings
    from shipper.engines.detect import build_engine

    engine = build_engine(ShipperSettings(retention_days=7, index_replicas=0), "elasticsearch")
    sent: list[tuple[str, str, Any]] = []

    async def record(method: str, path: str, body: Any = None) -> Any:
        sent.append((method, path, body))
        return {}

    engine.request = record  # type: ignore[method-assign]
    try:
        await engine.install_templates()
    finally:
        await engine.close()
    ilm = next(body for _, path, body in sent if path.startswith("/_ilm/policy/"))
    assert ilm["policy"]["phases"]["delete"]["min_age"] == "7d"
    settings = next(body for _, path, body in sent if path == f"/_component_template/{COMPONENT_SETTINGS}")
    assert settings["template"]["settings"]["index.number_of_replicas"] == 0
