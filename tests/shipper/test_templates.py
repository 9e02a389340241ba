"""Setup, pure: the templates win over the built-in ones and map every field the product writes."""

from __future__ import annotations

from shipper.engines.elasticsearch import ElasticsearchEngine
from shipper.templates import ILM_POLICY, component_templates, field_types, ilm_policy, index_templates


def test_index_templates_cover_both_types_and_outrank_builtins() -> None:
    templates = index_templates()
    assert {p for t in templates.values() for p in t["index_patterns"]} == {"logs-*-*", "metrics-*-*"}
    for name, body in templates.items():
        assert "@" not in name
        assert body["priority"] > 500
        assert body["data_stream"] == {}
        assert set(body["composed_of"]) <= set(component_templates())


def test_every_contract_field_is_mapped() -> None:
    types = field_types()
    for path in ("@timestamp", "message", "log.level", "service.name", "service.node.name", "event.ingested",
                 "health.state", "health.from", "health.to", "alert.id", "rule.id", "dead_letter.original",
                 "dead_letter.offset", "error.type", "metric.value", "shipper.lag", "shipper.bulk_latency_ms",
                 "http.response.status_code", "event.duration", "trace.id"):
        assert path in types, path
    assert types["@timestamp"] == "date"
    assert types["event.duration"] == "long"
    settings = component_templates()["elk-pipeline-settings"]["template"]["settings"]
    assert 1000 <= settings["index.mapping.total_fields.limit"] <= 5000


def test_ilm_only_on_elasticsearch_with_rollover_and_delete() -> None:
    phases = ilm_policy()["policy"]["phases"]
    assert "rollover" in phases["hot"]["actions"] and "delete" in phases["delete"]["actions"]
    engine = ElasticsearchEngine.__new__(ElasticsearchEngine)
    engine.lifecycle = True
    adapted = engine.adapt_index_template(index_templates()["elk-pipeline-logs"])
    assert adapted["template"]["settings"]["index.lifecycle.name"] == ILM_POLICY
    engine.lifecycle = False
    assert "template" not in engine.adapt_index_template(index_templates()["elk-pipeline-logs"])


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
    settings = next(body for _, path, body in sent if path == "/_component_template/elk-pipeline-settings")
    assert settings["template"]["settings"]["index.number_of_replicas"] == 0
