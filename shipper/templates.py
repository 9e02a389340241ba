"""Index templates for every stream the product writes. Pure data: the setup stage installs them
and the Kibana validation reads them to check that every field a dashboard uses is mapped.

Priority 600 and no `@` in the names: Elastic's guidance for custom templates that overlap the
built-in `logs-*-*` / `metrics-*-*` ones (priority 100, Fleet up to 200), so ours win either way.
"""

from __future__ import annotations

from typing import Any

PRIORITY = 600
TOTAL_FIELDS_LIMIT = 2000
ILM_POLICY = "elk-pipeline"

KEYWORD = {"type": "keyword", "ignore_above": 1024}
TEXT = {"type": "match_only_text"}
DATE = {"type": "date"}
LONG = {"type": "long"}
DOUBLE = {"type": "double"}
FLOAT = {"type": "float"}
BOOL = {"type": "boolean"}
IP = {"type": "ip"}
STORED_ONLY = {"type": "text", "index": False}


def _obj(**fields: Any) -> dict[str, Any]:
    return {"properties": fields}


ECS_PROPERTIES: dict[str, Any] = {
    "@timestamp": DATE,
    "message": TEXT,
    "tags": KEYWORD,
    "labels": {"type": "object", "dynamic": True},
    "extra": {"type": "object", "enabled": False},
    "ecs": _obj(version=KEYWORD),
    # keyword, not constant_keyword: OpenSearch's constant_keyword needs its value in the mapping
    "data_stream": _obj(type=KEYWORD, dataset=KEYWORD, namespace=KEYWORD),
    "log": _obj(level=KEYWORD, logger=KEYWORD,
                origin=_obj(file=_obj(name=KEYWORD, line=LONG), function=KEYWORD)),
    "service": _obj(name=KEYWORD, version=KEYWORD, environment=KEYWORD, type=KEYWORD, node=_obj(name=KEYWORD)),
    "host": _obj(name=KEYWORD, hostname=KEYWORD),
    "container": _obj(id=KEYWORD, name=KEYWORD),
    "process": _obj(pid=LONG),
    "agent": _obj(type=KEYWORD, name=KEYWORD),
    "trace": _obj(id=KEYWORD),
    "span": _obj(id=KEYWORD),
    "transaction": _obj(id=KEYWORD),
    "error": _obj(type=KEYWORD, message=TEXT, stack_trace=TEXT),
    "event": _obj(kind=KEYWORD, dataset=KEYWORD, action=KEYWORD, module=KEYWORD, outcome=KEYWORD,
                  duration=LONG, created=DATE, ingested=DATE, id=KEYWORD, original={"type": "keyword",
                                                                                     "index": False}),
    "http": _obj(request=_obj(method=KEYWORD, id=KEYWORD),
                 response=_obj(status_code=LONG, body=_obj(bytes=LONG))),
    "url": _obj(path=KEYWORD, full=KEYWORD, query=KEYWORD),
    "user_agent": _obj(original=KEYWORD),
    "client": _obj(ip=IP, address=KEYWORD),
    # product fields (docs/ARCHITECTURE.md)
    "health": _obj(state=KEYWORD, status=KEYWORD, body_status=KEYWORD, scope=KEYWORD,
                   to=KEYWORD, reason=TEXT, previous_duration_ms=LONG, **{"from": KEYWORD}),
    "rule": _obj(id=KEYWORD, name=KEYWORD),
    "alert": _obj(id=KEYWORD, state=KEYWORD, severity=KEYWORD, started=DATE, resolved=DATE, reason=TEXT,
                  flapping=BOOL, renotified=LONG, duration_ms=LONG),
    "dead_letter": _obj(original=STORED_ONLY, encoding=KEYWORD, topic=KEYWORD, partition=LONG, offset=LONG,
                        key=KEYWORD, stage=KEYWORD, truncated=BOOL, original_bytes=LONG),
    "metric": _obj(name=KEYWORD, type=KEYWORD, unit=KEYWORD, value=DOUBLE, delta=DOUBLE, count=LONG, sum=DOUBLE,
                   min=DOUBLE, max=DOUBLE, p50=DOUBLE, p95=DOUBLE, p99=DOUBLE),
    "shipper": _obj(consumed=LONG, indexed=LONG, dead_lettered=LONG, retried=LONG, bulk_latency_ms=DOUBLE,
                    lag=LONG, records_per_s=DOUBLE),
}

DYNAMIC_TEMPLATES: list[dict[str, Any]] = [
    {"labels_as_keyword": {"path_match": "labels.*", "mapping": KEYWORD}},
    # unknown strings as keyword, as ECS does; no surprise text + keyword pairs per field
    {"strings_as_keyword": {"match_mapping_type": "string", "mapping": KEYWORD}},
]


def component_templates(replicas: int | None = None) -> dict[str, dict[str, Any]]:
    settings: dict[str, Any] = {
        "index.mapping.total_fields.limit": TOTAL_FIELDS_LIMIT,
        "index.mapping.ignore_malformed": True,
        "index.refresh_interval": "1s",
    }
    if replicas is not None:
        settings["index.number_of_replicas"] = replicas
    return {
        "elk-pipeline-ecs-mappings": {
            "template": {"mappings": {"dynamic_templates": DYNAMIC_TEMPLATES, "properties": ECS_PROPERTIES}},
        },
        "elk-pipeline-settings": {"template": {"settings": settings}},
    }


def index_templates() -> dict[str, dict[str, Any]]:
    composed = list(component_templates())
    return {
        f"elk-pipeline-{type_}": {
            "index_patterns": [f"{type_}-*-*"],
            "data_stream": {},
            "priority": PRIORITY,
            "composed_of": composed,
            "_meta": {"managed_by": "elk-pipeline", "description": f"ECS {type_} streams written by the shipper"},
        }
        for type_ in ("logs", "metrics")
    }


def ilm_policy(delete_after: str = "30d") -> dict[str, Any]:
    """Elasticsearch only: roll over daily or at 50 GB, delete after `delete_after`."""
    return {"policy": {"phases": {
        "hot": {"actions": {"rollover": {"max_age": "1d", "max_primary_shard_size": "50gb"}}},
        "delete": {"min_age": delete_after, "actions": {"delete": {}}},
    }}}


def field_types() -> dict[str, str]:
    """Every mapped field as a dotted path -> type (for validation of dashboards and rules)."""
    out: dict[str, str] = {}

    def walk(props: dict[str, Any], prefix: str) -> None:
        for name, spec in props.items():
            path = f"{prefix}{name}"
            if "properties" in spec:
                walk(spec["properties"], f"{path}.")
            else:
                out[path] = spec.get("type", "object")

    walk(ECS_PROPERTIES, "")
    return out
