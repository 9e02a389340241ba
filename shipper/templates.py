"""Index templates for the streams the product writes, and only for those. Pure data: setup and the
sink install them, the Kibana validation reads them to check that every field a dashboard uses is
mapped.

Field types come from Elastic's ECS definitions of `collector.contract.ecs.ECS_VERSION`, vendored as
the generated `ecs_fields.json` (tools/ecs_fields.py, `make ecs-fields`), never retyped here. The
product's own custom roots are added beside them.

A good neighbour in a shared cluster: one index template per stream family the product writes,
`<type>-<dataset>-*` with the exact dataset, instead of `logs-*-*` / `metrics-*-*`. The own datasets'
templates are put at setup; a service's dataset gets its template the first time the sink writes to
it (`stream_template`), before the stream exists. Every other producer's streams (Elastic Agent,
Filebeat, integrations) keep their own templates and mappings.

Someone else's streams stay theirs: before the first write of a dataset, a template of another producer
that names that dataset (`claims_dataset`), or a stream of the family created under another template,
means ours is not put at all (any priority: an integration at 200 keeps `logs-nginx.access-*`); the
records go into those streams under their template, and no lifecycle of ours reaches them.

Priority 650: above the engines' built-in `logs`/`metrics` templates (100), Fleet's integration
templates (200) and the product's former broad templates (600, removed by `shipper setup`), so a
dataset our services write is mapped our way; no `@` in the names (Elastic reserves those).
"""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from collector.contract.ecs import ECS_VERSION
from collector.contract.streams import DATASET_ALERTS, DATASET_DEAD_LETTER, DATASET_HEALTH, DATASET_PIPELINE

PRIORITY = 650
# ECS alone maps ~2,000 fields (objects and multi-fields count); room for the services' own fields
TOTAL_FIELDS_LIMIT = 5000
ILM_POLICY = "elk-pipeline"
MANAGED_BY = "elk-pipeline"
ECS_FIELDS_FILE = Path(__file__).resolve().parent / "ecs_fields.json"
# the mappings' name carries the ECS version: an upgrade to another ECS puts a new component beside the old
COMPONENT_MAPPINGS = f"elk-pipeline-ecs-{ECS_VERSION}"
COMPONENT_SETTINGS = "elk-pipeline-stream-settings"
# the broad templates of earlier versions (logs-*-* / metrics-*-* at 600) and their components:
# `shipper setup` removes them
LEGACY_TEMPLATES = ("elk-pipeline-logs", "elk-pipeline-metrics")
LEGACY_COMPONENTS = ("elk-pipeline-ecs-mappings", "elk-pipeline-settings")
# the product's own streams, put at setup: (type, dataset)
OWN_STREAMS = (("logs", DATASET_HEALTH), ("logs", DATASET_ALERTS), ("logs", DATASET_DEAD_LETTER),
               ("metrics", DATASET_PIPELINE))

KEYWORD = {"type": "keyword", "ignore_above": 1024}
TEXT = {"type": "match_only_text"}
DATE = {"type": "date"}
LONG = {"type": "long"}
DOUBLE = {"type": "double"}
BOOL = {"type": "boolean"}
STORED_ONLY = {"type": "text", "index": False}


def _obj(**fields: Any) -> dict[str, Any]:
    return {"properties": fields}


# The product's custom roots (docs/ARCHITECTURE.md). ECS advises custom fields under names ECS does not
# use and will not (ecs-custom-fields-in-ecs); none of these is an ECS field set in ECS_VERSION, which a
# test checks. `rule.*` is ECS's own field set and is mapped from the definitions.
PRODUCT_PROPERTIES: dict[str, Any] = {
    "extra": {"type": "object", "enabled": False},
    "health": _obj(state=KEYWORD, status=KEYWORD, body_status=KEYWORD, scope=KEYWORD,
                   to=KEYWORD, reason=TEXT, previous_duration_ms=LONG, **{"from": KEYWORD}),
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
    # fields outside ECS and the product's roots: strings as keyword, as ECS does; no text + keyword pairs
    {"strings_as_keyword": {"match_mapping_type": "string", "mapping": KEYWORD}},
]


@cache
def ecs_definitions() -> dict[str, Any]:
    """The vendored artifact: {source, ecs_version, fields: {flat name: mapping attributes}}."""
    data: dict[str, Any] = json.loads(ECS_FIELDS_FILE.read_text())
    return data


def nest(flat: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Flat dotted names -> mapping properties; an `object`/`nested` entry keeps its type and gets
    its children as properties."""
    root: dict[str, Any] = {}
    for name in sorted(flat):  # a parent sorts before its children
        *parents, last = name.split(".")
        node = root
        for part in parents:
            node = node.setdefault(part, {}).setdefault("properties", {})
        node.setdefault(last, {}).update(copy.deepcopy(flat[name]))
    return root


def _ecs_properties() -> dict[str, Any]:
    definitions = ecs_definitions()
    if definitions["ecs_version"] != ECS_VERSION:
        raise RuntimeError(f"{ECS_FIELDS_FILE.name} holds ECS {definitions['ecs_version']}, the product claims "
                           f"{ECS_VERSION}: run `make ecs-fields`")
    # data_stream.* is put per stream (its constant values differ per engine), not in the shared component
    fields = {k: v for k, v in definitions["fields"].items() if not k.startswith("data_stream.")}
    props = nest(fields)
    for root, spec in PRODUCT_PROPERTIES.items():
        if root in props:
            raise RuntimeError(f"custom root {root!r} is an ECS field set")
        props[root] = copy.deepcopy(spec)
    return props


# Every mapped field in Elasticsearch's terms (the ECS types); OpenSearch gets `for_engine(...)` of it.
ECS_PROPERTIES: dict[str, Any] = _ecs_properties()


def data_stream_properties(type_: str, dataset: str, engine: str) -> dict[str, Any]:
    """`data_stream.*`: ECS types them constant_keyword. Elasticsearch takes the value from the first
    document; OpenSearch's constant_keyword needs it in the mapping, so the type and dataset get theirs
    (fixed per template) and the namespace, which varies under one template, is a keyword."""
    if engine == "opensearch":
        return {"properties": {"type": {"type": "constant_keyword", "value": type_},
                               "dataset": {"type": "constant_keyword", "value": dataset},
                               "namespace": KEYWORD}}
    return {"properties": {k: {"type": "constant_keyword"} for k in ("type", "dataset", "namespace")}}


# OpenSearch equivalents of the ECS types it lacks or has only from some version on (OpenSearch docs,
# "Supported field types"): flattened -> flat_object (2.7); match_only_text (2.12), constant_keyword (2.14)
# and wildcard (2.15) fall back to text / keyword on older ones. Its wildcard keeps no doc values unless
# asked, and asked it rejects values over 32766 bytes (a long stack trace): left without, so wildcard
# fields are searched, not aggregated (kibana/validate.py holds dashboards to that).
_OPENSEARCH_SINCE: dict[str, tuple[tuple[int, ...], dict[str, Any]]] = {"match_only_text": ((2, 12), {"type": "text"}),
                     "constant_keyword": ((2, 14), {"type": "keyword"}),
                     # 8191 characters of up to 4 bytes stay under Lucene's 32766-byte term limit
                     "wildcard": ((2, 15), {"type": "keyword", "ignore_above": 8191})}


def _opensearch_field(spec: dict[str, Any], version: tuple[int, ...]) -> dict[str, Any]:
    out = dict(spec)
    type_ = out.get("type")
    if type_ == "flattened":
        out = {"type": "flat_object"}
    elif type_ in _OPENSEARCH_SINCE:
        since, fallback = _OPENSEARCH_SINCE[type_]
        if version < since:
            keep = {k: v for k, v in out.items() if k in ("fields", "index", "doc_values")}
            out = {**fallback, **keep}
    if "fields" in out:
        out["fields"] = {k: _opensearch_field(v, version) for k, v in out["fields"].items()}
    if "properties" in out:
        out["properties"] = for_engine(out["properties"], "opensearch", version)
    return out


def for_engine(props: dict[str, Any], engine: str, version: tuple[int, ...] = (2, 19)) -> dict[str, Any]:
    """The properties as the engine takes them."""
    if engine != "opensearch":
        return props
    return {name: _opensearch_field(spec, version) for name, spec in props.items()}


def component_templates(engine: str = "elasticsearch", version: tuple[int, ...] = (8, 11),
                        replicas: int | None = None) -> dict[str, dict[str, Any]]:
    settings: dict[str, Any] = {
        "index.mapping.ignore_malformed": True,
        "index.refresh_interval": "1s",
    }
    if replicas is not None:
        settings["index.number_of_replicas"] = replicas
    properties = for_engine(ECS_PROPERTIES, engine, version)
    return {
        COMPONENT_MAPPINGS: {
            # the limit beside the mappings it is for: the engines validate a component template on its own
            "template": {"settings": {"index.mapping.total_fields.limit": TOTAL_FIELDS_LIMIT},
                         "mappings": {"dynamic_templates": DYNAMIC_TEMPLATES, "properties": properties}},
            "_meta": {"managed_by": MANAGED_BY, "ecs_version": ECS_VERSION,
                      "ecs_source": ecs_definitions()["source"]},
        },
        COMPONENT_SETTINGS: {"template": {"settings": settings}, "_meta": {"managed_by": MANAGED_BY}},
    }


def stream_template_name(type_: str, dataset: str) -> str:
    return f"elk-pipeline-{type_}-{dataset}"


def stream_template(type_: str, dataset: str, engine: str = "elasticsearch") -> dict[str, Any]:
    """The index template of one stream family, `<type>-<dataset>-*` (every namespace)."""
    return {
        "index_patterns": [f"{type_}-{dataset}-*"],
        "data_stream": {},
        "priority": PRIORITY,
        "composed_of": [COMPONENT_MAPPINGS, COMPONENT_SETTINGS],
        "template": {"mappings": {"properties": {"data_stream": data_stream_properties(type_, dataset, engine)}}},
        "_meta": {"managed_by": MANAGED_BY, "description": f"ECS {type_} streams of dataset {dataset} "
                                                           "written by the shipper"},
    }


def split_stream(stream: str) -> tuple[str, str, str] | None:
    """`logs-api_service-default` -> (type, dataset, namespace); None for a name off the scheme
    (dataset and namespace never contain `-`: collector.contract.streams)."""
    parts = stream.split("-")
    if len(parts) != 3 or parts[0] not in ("logs", "metrics") or not parts[1] or not parts[2]:
        return None
    return parts[0], parts[1], parts[2]


# What PUT _index_template takes (Elasticsearch and OpenSearch docs, "Create or update index template").
# A GET answers more: since Elasticsearch 9.2 `created_date_millis` / `modified_date_millis`, which a PUT
# refuses with 400 (elastic/elasticsearch#132083; Kibana had the same bug, elastic/kibana#249168), so a
# template read back is rewritten from these fields only, never sent back whole.
INDEX_TEMPLATE_FIELDS = ("index_patterns", "template", "composed_of", "priority", "version", "_meta", "data_stream",
                         "allow_auto_create", "ignore_missing_component_templates", "deprecated")


def writable_index_template(body: dict[str, Any]) -> dict[str, Any]:
    """An index template as a GET returned it, reduced to what a PUT accepts."""
    return {k: body[k] for k in INDEX_TEMPLATE_FIELDS if k in body}


def is_ours(template: dict[str, Any]) -> bool:
    return (template.get("_meta") or {}).get("managed_by") == MANAGED_BY


def _pattern(glob: str) -> re.Pattern[str]:
    # index patterns know one wildcard, `*`; every other character is literal
    return re.compile(".*".join(re.escape(part) for part in glob.split("*")), re.DOTALL)


def claims_dataset(patterns: list[str], type_: str, dataset: str) -> bool:
    """Whether a template's index patterns name streams of this `<type>-<dataset>` family in particular
    (an integration's `logs-nginx.access-*`, `logs-nginx*`, `logs-generic-prod`), as opposed to a catch-all
    over every dataset (the engines' built-in `logs-*-*`, an operator's `logs-*`, `*`), which our
    priority is meant to outrank. A pattern claims the family when it matches one of its names but not
    the same name with a dataset no producer can use."""
    prefix = f"{type_}-{dataset}-"
    unusable = f"{type_}-\x00-"
    for glob in patterns:
        if glob.startswith(prefix) and "*" not in glob[: len(prefix)]:
            return True  # inside the family, whatever the namespace part says
        probe = _pattern(glob)
        if probe.fullmatch(prefix + "x") or probe.fullmatch(prefix):
            if not (probe.fullmatch(unusable + "x") or probe.fullmatch(unusable)):
                return True
    return False


def index_templates(engine: str = "elasticsearch") -> dict[str, dict[str, Any]]:
    """The templates put at setup: the product's own streams."""
    return {stream_template_name(t, d): stream_template(t, d, engine) for t, d in OWN_STREAMS}


def ilm_policy(delete_after: str = "30d") -> dict[str, Any]:
    """Elasticsearch only: roll over daily or at 50 GB, delete after `delete_after`."""
    return {"policy": {"phases": {
        "hot": {"actions": {"rollover": {"max_age": "1d", "max_primary_shard_size": "50gb"}}},
        "delete": {"min_age": delete_after, "actions": {"delete": {}}},
    }}}


def field_types() -> dict[str, str]:
    """Every mapped field as a dotted path -> type (Elasticsearch's terms), multi-fields included."""
    out: dict[str, str] = {}

    def walk(props: dict[str, Any], prefix: str) -> None:
        for name, spec in props.items():
            path = f"{prefix}{name}"
            out[path] = spec.get("type", "object")
            if "properties" in spec:
                walk(spec["properties"], f"{path}.")
            for sub, sub_spec in (spec.get("fields") or {}).items():
                out[f"{path}.{sub}"] = sub_spec.get("type", "object")

    walk({**ECS_PROPERTIES, "data_stream": data_stream_properties("logs", "x", "elasticsearch")}, "")
    return out
