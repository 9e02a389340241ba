"""Offline validation of the bundle: what Kibana's import does not check, checked before it runs.

Every object has a type and an id, ids are unique, every reference resolves inside the bundle,
every dashboard panel has a type and a panelRefName that Kibana finds among its references, every
JSON-string attribute parses, every Lens layer has its data-view reference and every accessor exists
in its columns, every Lens column has the data type and scale Lens gives it, the grid fits 48
columns, every field a panel, saved search, control or rule uses is mapped by the shipper's index
templates with a type that allows that use, and the data views and rules over service streams
leave the product's own `elk.*` streams out the same way.

Where a rule comes from Kibana's behaviour, the comment names the Kibana source file (github.com/
elastic/kibana, 8.x) it was checked against.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from collector.contract.streams import service_streams
from kibana import bundle, kql
from kibana.bundle import Obj

GRID_COLUMNS = 48  # DASHBOARD_GRID_COLUMN_COUNT, src/plugins/dashboard/common/content_management/constants.ts
MIN_KIBANA = (8, 11, 0)  # the oldest Kibana the bundle must import into; objects never import into an older one
NUMERIC = {"long", "integer", "short", "byte", "double", "float", "half_float", "scaled_float", "unsigned_long"}
# not wildcard: OpenSearch's keeps no doc values (shipper/templates.py), so it cannot be aggregated there
AGGREGATABLE = NUMERIC | {"keyword", "constant_keyword", "date", "boolean", "ip"}
TEXT = {"text", "match_only_text"}
# what each use needs from the field's mapping
USES: dict[str, set[str]] = {
    "date": {"date"},
    "terms": AGGREGATABLE - {"date"},
    "numeric": NUMERIC,
    "min_max": NUMERIC | {"date"},
    "last_value": AGGREGATABLE,
    "unique_count": AGGREGATABLE,
    "sort": AGGREGATABLE,
    "range": NUMERIC | {"date"},
    "wildcard": {"keyword", "constant_keyword", "wildcard"},
    "match": AGGREGATABLE | TEXT | {"wildcard"},
    "phrase": AGGREGATABLE | TEXT | {"wildcard"},
    "exists": AGGREGATABLE | TEXT | {"wildcard"},
    "display": AGGREGATABLE | TEXT | {"wildcard", "object"},
}
LENS_FIELD_USE = {"date_histogram": "date", "terms": "terms", "average": "numeric", "sum": "numeric",
                  "median": "numeric", "percentile": "numeric", "min": "min_max", "max": "min_max",
                  "last_value": "last_value", "unique_count": "unique_count", "count": "exists"}
VIS_TYPES = {"lnsXY", "lnsMetric", "lnsDatatable", "lnsPie", "lnsGauge", "lnsHeatmap", "lnsLegacyMetric"}
# ActionGroupId of each rule type: x-pack/plugins/stack_alerts/server/rule_types/es_query/rule_type.ts
# and index_threshold/rule_type.ts
RULE_GROUPS = {".es-query": "query matched", ".index-threshold": "threshold met"}
CONNECTOR_TYPES = {".server-log", ".webhook", ".index", ".email", ".slack"}
PATTERN = re.compile(r"^-?(logs|metrics)-[a-z0-9_.*]+-\*$")
# Kibana's field type for each mapping type (packages/kbn-field-types/src/kbn_field_types_factory.ts):
# Lens copies it into a column's dataType
STRING_TYPES = {"keyword", "constant_keyword", "wildcard", "text", "match_only_text", "version"}
KBN_TYPE = {**dict.fromkeys(STRING_TYPES, "string"), **dict.fromkeys(NUMERIC, "number"), "date": "date",
            "date_nanos": "date", "ip": "ip", "boolean": "boolean", "geo_point": "geo_point"}
# the dataType and scale Lens's buildColumn gives each operation (x-pack/plugins/lens/public/datasources/
# form_based/operations/definitions/: date_histogram.tsx "interval", terms/index.tsx "ordinal", count.tsx,
# cardinality.tsx, percentile.tsx and metrics.tsx "ratio" -- min/max keep a date field's type --,
# last_value.tsx "ordinal" for string fields, else "ratio"); None: the field's own Kibana type
LENS_COLUMN: dict[str, tuple[str | None, str | None]] = {
    "date_histogram": ("date", "interval"), "terms": (None, "ordinal"), "count": ("number", "ratio"),
    "unique_count": ("number", "ratio"), "percentile": ("number", "ratio"), "average": ("number", "ratio"),
    "sum": ("number", "ratio"), "median": ("number", "ratio"), "min": (None, "ratio"), "max": (None, "ratio"),
    "last_value": (None, None),
}


def template_fields() -> dict[str, dict[str, Any]]:
    """Every field the shipper's templates map, dotted path -> mapping (type, index, ...)."""
    from shipper.templates import ECS_PROPERTIES, data_stream_properties

    out: dict[str, dict[str, Any]] = {}

    def walk(props: dict[str, Any], prefix: str) -> None:
        for name, spec in props.items():
            if "properties" in spec:
                walk(spec["properties"], f"{prefix}{name}.")
                continue
            out[f"{prefix}{name}"] = spec
            for sub, sub_spec in (spec.get("fields") or {}).items():  # multi-fields, e.g. message.keyword
                out[f"{prefix}{name}.{sub}"] = sub_spec

    walk({**ECS_PROPERTIES, "data_stream": data_stream_properties("logs", "any", "elasticsearch")}, "")
    return out


class Validator:
    def __init__(self, fields: dict[str, dict[str, Any]] | None = None) -> None:
        self.fields = template_fields() if fields is None else fields
        self.problems: list[str] = []

    def problem(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    # ---- fields

    def mapping(self, name: str) -> dict[str, Any] | None:
        if name in self.fields:
            return self.fields[name]
        if name.startswith("labels.") and len(name) > len("labels."):  # dynamic template: keyword
            return {"type": "keyword"}
        return None

    def field(self, where: str, name: Any, use: str) -> None:
        if not isinstance(name, str) or not name:
            self.problem(where, f"missing field name for {use}")
            return
        spec = self.mapping(name)
        if spec is None:
            self.problem(where, f"field {name!r} is not in the shipper's index templates")
            return
        type_ = spec.get("type", "object")
        if type_ not in USES[use]:
            self.problem(where, f"field {name!r} is {type_}; {use} needs {'/'.join(sorted(USES[use]))}")
        elif use not in ("display",) and spec.get("index") is False and use in ("match", "phrase", "range",
                                                                                 "wildcard", "exists"):
            self.problem(where, f"field {name!r} is not indexed, so it cannot be searched")
        elif use in ("terms", "last_value", "sort", "unique_count") and spec.get("doc_values") is False:
            self.problem(where, f"field {name!r} has no doc values, so it cannot be aggregated")

    def query(self, where: str, query: Any) -> None:
        if not isinstance(query, dict):
            self.problem(where, "query must be {query, language}")
            return
        if query.get("language", "kuery") != "kuery":
            self.problem(where, f"only KQL is checked; language is {query.get('language')!r}")
            return
        try:
            tree = kql.parse(str(query.get("query") or ""))
        except kql.KqlError as exc:
            self.problem(where, f"query {query.get('query')!r}: {exc}")
            return
        for f in kql.fields(tree):
            self.field(where, f.name, f.use)

    def filters(self, where: str, filters: Any) -> None:
        if filters not in (None, []):
            self.problem(where, "filter pills are not supported by the checks; express them in the KQL query")

    # ---- whole bundle

    def run(self, objects: Sequence[Obj], rules: Sequence[Obj] = (), connectors: Sequence[Obj] = ()) -> list[str]:
        decoded: list[Obj] = []
        keys: dict[str, int] = {}
        for n, obj in enumerate(objects, 1):
            where = f"object {n}"
            if not isinstance(obj, dict):
                self.problem(where, "not an object")
                continue
            type_, id_ = obj.get("type"), obj.get("id")
            if not isinstance(type_, str) or not type_:
                self.problem(where, "no type")
                continue
            if not isinstance(id_, str) or not id_:
                self.problem(where, f"{type_} without an id")
                continue
            where = f"{type_}:{id_}"
            keys[where] = keys.get(where, 0) + 1
            if type_ not in bundle.SAVED_TYPES:
                self.problem(where, f"unexpected type (bundle holds {', '.join(bundle.SAVED_TYPES)})")
                continue
            if not isinstance(obj.get("attributes"), dict):
                self.problem(where, "no attributes")
                continue
            refs = obj.get("references")
            if not isinstance(refs, list) or not all(
                    isinstance(r, dict) and all(isinstance(r.get(k), str) and r[k] for k in ("id", "type", "name"))
                    for r in refs):
                self.problem(where, "references must be a list of {id, type, name}")
                continue
            self.check_versions(where, obj)
            names = [r["name"] for r in refs]
            if len(names) != len(set(names)):
                self.problem(where, "duplicate reference names")
            plain, errors = bundle.decode(obj)
            for error in errors:
                self.problem(where, error)
            if not errors:
                decoded.append(plain)
        for key, count in keys.items():
            if count > 1:
                self.problem(key, f"id used {count} times")
        present = set(keys)
        for obj in decoded:
            where = f"{obj['type']}:{obj['id']}"
            for ref in obj["references"]:
                if f"{ref['type']}:{ref['id']}" not in present:
                    self.problem(where, f"reference {ref['name']!r} -> {ref['type']}:{ref['id']} is not in the bundle")
            try:
                getattr(self, "check_" + obj["type"].replace("-", "_"))(where, obj)
            except (KeyError, TypeError, AttributeError, ValueError) as exc:
                self.problem(where, f"malformed: {type(exc).__name__}: {exc}")
        for rule in rules:
            where = f"rule:{rule.get('name') or rule.get('id')}"
            try:
                self.check_rule(where, rule, {str(c.get("id")) for c in connectors})
            except (KeyError, TypeError, AttributeError, ValueError) as exc:
                self.problem(where, f"malformed: {type(exc).__name__}: {exc}")
        for connector in connectors:
            self.check_connector(f"connector:{connector.get('name') or connector.get('id')}", connector)
        ids = [str(x.get("id")) for x in (*rules, *connectors)]
        for dup in {i for i in ids if ids.count(i) > 1}:
            self.problem(f"alerting:{dup}", "id used more than once")
        return self.problems

    def check_versions(self, where: str, obj: Obj) -> None:
        """Migration versions newer than the oldest supported Kibana make that Kibana reject the object."""
        for key in ("coreMigrationVersion", "typeMigrationVersion"):
            value = obj.get(key)
            if value is None:
                continue
            try:
                version = tuple(int(part) for part in str(value).split("."))
            except ValueError:
                self.problem(where, f"{key} {value!r} is not a version")
                continue
            if key == "coreMigrationVersion" and version > MIN_KIBANA:
                self.problem(where, f"{key} {value} is newer than Kibana {'.'.join(map(str, MIN_KIBANA))}")
            # model versions are written as virtual versions 10.<n>.0 (core-saved-objects-base-server-internal,
            # model_version/conversion.ts); only Kibanas with model-version migrations know them
            if key == "typeMigrationVersion" and version[0] >= 10:
                self.problem(where, f"{key} {value} is a model version only recent Kibanas know")

    # ---- per type

    def check_index_pattern(self, where: str, obj: Obj) -> None:
        attrs = obj["attributes"]
        title = attrs.get("title")
        if not isinstance(title, str) or not title:
            self.problem(where, "no title (the index pattern)")
            return
        for part in title.split(","):
            if not PATTERN.match(part):
                self.problem(where, f"pattern {part!r} is not of the form <type>-<dataset>-* (stream naming)")
        self.check_streams(where, title.split(","))
        self.field(where, attrs.get("timeFieldName"), "date")
        for name in (attrs.get("fieldFormatMap") or {}):
            self.field(where, name, "display")

    def check_search(self, where: str, obj: Obj) -> None:
        attrs = obj["attributes"]
        source = attrs["kibanaSavedObjectMeta"]["searchSourceJSON"]
        ref_name = source.get("indexRefName")
        refs = {r["name"]: r for r in obj["references"]}
        if ref_name not in refs or refs[ref_name]["type"] != "index-pattern":
            self.problem(where, f"indexRefName {ref_name!r} has no index-pattern reference")
        self.query(where, source.get("query"))
        self.filters(where, source.get("filter"))
        for column in attrs.get("columns", []):
            self.field(where, column, "display")
        for entry in attrs.get("sort", []):
            if not (isinstance(entry, list) and len(entry) == 2 and entry[1] in ("asc", "desc")):
                self.problem(where, f"sort entry {entry!r} must be [field, asc|desc]")
                continue
            self.field(where, entry[0], "sort")

    def check_lens(self, where: str, obj: Obj) -> None:
        attrs = obj["attributes"]
        vis_type = attrs.get("visualizationType")
        if vis_type not in VIS_TYPES:
            self.problem(where, f"visualizationType {vis_type!r} is not a Lens visualization")
        state = attrs["state"]
        self.query(where, state.get("query"))
        self.filters(where, state.get("filters"))
        layers = state["datasourceStates"]["formBased"]["layers"]
        if not isinstance(layers, dict) or not layers:
            self.problem(where, "no formBased layers")
            return
        refs = {r["name"]: r for r in obj["references"]}
        columns_of: dict[str, dict[str, Any]] = {}
        for layer_id, layer in layers.items():
            lw = f"{where} layer {layer_id}"
            # the form-based datasource's getLayerReferenceName (x-pack/plugins/lens/public/datasources/
            # form_based/form_based.ts)
            ref = refs.get(f"indexpattern-datasource-layer-{layer_id}")
            if ref is None or ref["type"] != "index-pattern":
                self.problem(lw, f"no index-pattern reference 'indexpattern-datasource-layer-{layer_id}'")
            columns = layer.get("columns")
            if not isinstance(columns, dict) or not columns:
                self.problem(lw, "no columns")
                continue
            columns_of[layer_id] = columns
            if sorted(layer.get("columnOrder", [])) != sorted(columns):
                self.problem(lw, "columnOrder must list exactly the layer's columns")
            for col_id, col in columns.items():
                self.check_column(f"{lw} column {col_id}", col, columns)
        for layer_id, accessors in self.accessors(vis_type, state["visualization"]):
            if layer_id not in columns_of:
                self.problem(where, f"visualization layer {layer_id!r} has no data layer")
                continue
            for acc in accessors:
                if acc not in columns_of[layer_id]:
                    self.problem(where, f"accessor {acc!r} is not a column of layer {layer_id}")

    @staticmethod
    def accessors(vis_type: Any, vis: dict[str, Any]) -> Iterable[tuple[str, list[str]]]:
        def ids(layer: dict[str, Any], *keys: str) -> list[str]:
            out: list[str] = []
            for key in keys:
                value = layer.get(key)
                if isinstance(value, str):
                    out.append(value)
                elif isinstance(value, list):
                    out += [v if isinstance(v, str) else v.get("columnId") for v in value]
            return out

        if vis_type == "lnsXY":
            for layer in vis.get("layers", []):
                if layer.get("layerType", "data") == "data":
                    yield layer["layerId"], ids(layer, "xAccessor", "accessors", "splitAccessor")
        elif vis_type == "lnsDatatable":
            yield vis["layerId"], ids(vis, "columns")
        elif vis_type == "lnsMetric":
            yield vis["layerId"], ids(vis, "metricAccessor", "secondaryMetricAccessor", "maxAccessor",
                                      "breakdownByAccessor")
        elif vis_type == "lnsPie":
            for layer in vis.get("layers", []):
                yield layer["layerId"], ids(layer, "primaryGroups", "secondaryGroups", "metrics", "metric")
        elif isinstance(vis, dict) and "layerId" in vis:
            yield vis["layerId"], ids(vis, "accessor", "metricAccessor", "xAccessor", "yAccessor", "valueAccessor")

    def check_column(self, where: str, col: dict[str, Any], columns: dict[str, Any]) -> None:
        op = col.get("operationType")
        if op not in LENS_FIELD_USE:
            self.problem(where, f"operation {op!r} is not one the validation can check")
            return
        src = col.get("sourceField")
        if op == "count" and src in (None, "___records___"):
            pass
        else:
            self.field(where, src, LENS_FIELD_USE[op])
        if bool(col.get("isBucketed")) != (op in ("date_histogram", "terms")):
            self.problem(where, f"isBucketed does not match operation {op}")
        self.check_column_kind(where, op, col)
        if col.get("filter"):
            self.query(where, col["filter"])
        params = col.get("params") or {}
        if op == "terms":
            order = params.get("orderBy") or {}
            if order.get("type") == "column" and order.get("columnId") not in columns:
                self.problem(where, f"terms ordered by missing column {order.get('columnId')!r}")
            if not isinstance(params.get("size"), int) or params["size"] < 1:
                self.problem(where, "terms needs params.size >= 1")
        if op == "last_value":
            self.field(where, params.get("sortField", "@timestamp"), "sort")

    def check_column_kind(self, where: str, op: str, col: dict[str, Any]) -> None:
        """dataType and scale as Lens builds the column (see LENS_COLUMN): a hand-written column that
        differs is one Lens would not have made, and its charts treat it differently."""
        data_type, scale = LENS_COLUMN[op]
        spec = self.mapping(col.get("sourceField") or "") or {}
        field_kbn = KBN_TYPE.get(str(spec.get("type")), "unknown")
        if data_type is None:
            data_type = field_kbn if op not in ("min", "max") or field_kbn == "date" else "number"
        if scale is None:
            scale = "ordinal" if field_kbn == "string" else "ratio"
        if col.get("dataType") != data_type:
            self.problem(where, f"dataType {col.get('dataType')!r}: Lens gives {op} of this field {data_type!r}")
        if col.get("scale") != scale:
            self.problem(where, f"scale {col.get('scale')!r}: Lens builds {op} columns with {scale!r}")

    def check_streams(self, where: str, patterns: Sequence[str]) -> None:
        """A broad `logs-*-*` / `metrics-*-*` must leave out the product's own streams exactly as the
        contract says (collector.contract.streams.service_streams), so that a data view and a rule over
        "the services" count the same documents."""
        for type_ in ("logs", "metrics"):
            wanted = service_streams(type_)
            if wanted[0] in patterns and tuple(patterns) != wanted:
                self.problem(where, f"patterns {','.join(patterns)!r} over service streams must be exactly "
                                    f"{','.join(wanted)!r} (the product's own elk.* streams left out)")

    def check_dashboard(self, where: str, obj: Obj) -> None:
        attrs = obj["attributes"]
        refs = {r["name"]: r for r in obj["references"]}
        panels = attrs.get("panelsJSON")
        if not isinstance(panels, list) or not panels:
            self.problem(where, "panelsJSON must be a non-empty list")
            return
        seen: set[str] = set()
        cells: dict[tuple[int, int], str] = {}
        for n, panel in enumerate(panels, 1):
            pw = f"{where} panel {panel.get('panelIndex', n)}"
            if not panel.get("type"):  # extractReferences throws: dashboard_saved_object_references.ts
                self.problem(pw, "no type (the dashboard will not render)")
            index = panel.get("panelIndex")
            if not isinstance(index, str) or index in seen:
                self.problem(pw, "panelIndex missing or duplicate")
            seen.add(str(index))
            ref_name = panel.get("panelRefName")
            offered = panel_references(str(index), obj["references"])
            ref = offered.get(ref_name) if isinstance(ref_name, str) else None
            if ref is None:
                self.problem(pw, f"panelRefName {ref_name!r} matches no reference (Kibana looks it up among "
                                 f"{sorted(offered)}: 'Could not find reference' when the dashboard opens)")
            elif panel.get("type") and ref["type"] != panel["type"]:
                self.problem(pw, f"panel type {panel['type']!r} but its reference is a {ref['type']!r}")
            grid = panel.get("gridData") or {}
            try:
                x, y, w, h = (int(grid[k]) for k in ("x", "y", "w", "h"))
            except (KeyError, TypeError, ValueError):
                self.problem(pw, "gridData needs integer x, y, w, h")
                continue
            if grid.get("i") != index:
                self.problem(pw, "gridData.i must equal panelIndex")
            if x < 0 or y < 0 or w < 1 or h < 1 or x + w > GRID_COLUMNS:
                self.problem(pw, f"grid x={x} w={w} does not fit {GRID_COLUMNS} columns")
                continue
            for cx in range(x, x + w):
                for cy in range(y, y + h):
                    other = cells.setdefault((cx, cy), str(index))
                    if other != str(index):
                        self.problem(pw, f"overlaps panel {other}")
                        break
                else:
                    continue
                break
        controls = attrs.get("controlGroupInput")
        if controls:
            for cid, control in (controls.get("panelsJSON") or {}).items():
                cw = f"{where} control {cid}"
                if control.get("type") != "optionsListControl":
                    self.problem(cw, "only options-list controls are checked")
                    continue
                # the dashboard prefixes control references with "controlGroup_" (dashboard_container_
                # references.ts), the control group with "<explicitInput.id>:" (control_group_persistable_
                # state.ts) and the options list names its data view "optionsListDataView"
                # (options_list_persistable_state.ts)
                control_id = (control.get("explicitInput") or {}).get("id")
                if control_id != cid:
                    self.problem(cw, f"explicitInput.id {control_id!r} must equal the control's key")
                ref = refs.get(f"controlGroup_{control_id}:optionsListDataView")
                if ref is None or ref["type"] != "index-pattern":
                    self.problem(cw, f"no index-pattern reference 'controlGroup_{control_id}:optionsListDataView'")
                self.field(cw, (control.get("explicitInput") or {}).get("fieldName"), "terms")
        source = attrs.get("kibanaSavedObjectMeta", {}).get("searchSourceJSON", {})
        self.query(where, source.get("query", {"query": "", "language": "kuery"}))
        self.filters(where, source.get("filter"))

    # ---- alerting API objects

    def check_rule(self, where: str, rule: Obj, connector_ids: set[str]) -> None:
        if not _is_uuid(rule.get("id")):
            self.problem(where, "rule ids must be UUIDs (v1 or v4)")
        for key in ("name", "rule_type_id", "consumer", "schedule", "params"):
            if not rule.get(key):
                self.problem(where, f"no {key}")
        type_id = rule.get("rule_type_id")
        if type_id not in RULE_GROUPS:
            self.problem(where, f"rule type {type_id!r} is not .es-query or .index-threshold")
            return
        template = rule.get("action_template") or {}
        if template.get("group") != RULE_GROUPS[type_id]:
            self.problem(where, f"action group must be {RULE_GROUPS[type_id]!r}")
        if not template.get("message"):
            self.problem(where, "action_template needs a message")
        p = rule["params"]
        parts = [part for pattern in p.get("index") or [] for part in str(pattern).split(",")]
        for part in parts:
            if not PATTERN.match(part):
                self.problem(where, f"index {part!r} is not of the form <type>-<dataset>-*")
        self.check_streams(where, parts)
        if not p.get("index"):
            self.problem(where, "params.index must list the patterns")
        self.field(where, p.get("timeField"), "date")
        if p.get("thresholdComparator") not in (">", ">=", "<", "<=", "between", "notBetween"):
            self.problem(where, "bad thresholdComparator")
        threshold = p.get("threshold")
        wanted = 2 if p.get("thresholdComparator") in ("between", "notBetween") else 1
        if not isinstance(threshold, list) or len(threshold) != wanted:
            self.problem(where, f"threshold must be a list of {wanted} number(s)")
        if p.get("timeWindowUnit") not in ("s", "m", "h", "d") or not isinstance(p.get("timeWindowSize"), int):
            self.problem(where, "timeWindowSize (int) and timeWindowUnit (s|m|h|d) are required")
        if type_id == ".es-query":
            es_query = p.get("esQuery")
            if isinstance(es_query, str):
                try:
                    es_query = json.loads(es_query)
                except json.JSONDecodeError as exc:
                    self.problem(where, f"esQuery is not JSON: {exc}")
                    return
            if not isinstance(es_query, dict) or "query" not in es_query:
                self.problem(where, "esQuery must contain \"query\"")
                return
            for name, use in dsl_fields(es_query["query"]):
                self.field(where, name, use)
        else:
            if p.get("aggType", "count") != "count":
                self.field(where, p.get("aggField"), "numeric" if p["aggType"] in ("avg", "sum") else "min_max")
            if p.get("groupBy") == "top":
                self.field(where, p.get("termField"), "terms")
            if p.get("filterKuery"):
                self.query(where, {"query": p["filterKuery"], "language": "kuery"})

    def check_connector(self, where: str, connector: Obj) -> None:
        if not _is_uuid(connector.get("id")):
            self.problem(where, "connector ids must be UUIDs (v1 or v4)")
        if connector.get("connector_type_id") not in CONNECTOR_TYPES:
            self.problem(where, f"connector type {connector.get('connector_type_id')!r} is not supported")
        if not connector.get("name"):
            self.problem(where, "no name")


def panel_references(panel_index: str, references: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The references Kibana offers a dashboard panel when it opens, by the name panelRefName must have.

    From Kibana's dashboard plugin, common/persistable_state/dashboard_container_references.ts: on save
    (createExtract) a by-reference panel gets `panelRefName: "panel_<panelIndex>"` and the dashboard a
    reference named `"<panelIndex>:panel_<panelIndex>"`; on open (createInject) the references whose name
    starts with `"<panelIndex>:"` are taken with that prefix removed -- all references when none does --
    and panelRefName is looked up among them ("Could not find reference" otherwise).
    """
    prefix = f"{panel_index}:"
    own = {r["name"][len(prefix):]: r for r in references if r["name"].startswith(prefix)}
    return own or {r["name"]: r for r in references}


def _is_uuid(value: Any) -> bool:
    try:
        parsed = uuid.UUID(str(value))
    except ValueError:
        return False
    return str(parsed) == str(value).lower() and parsed.version in (1, 4)


_LEAF_USE = {"term": "terms", "terms": "terms", "match": "match", "match_phrase": "phrase", "range": "range",
             "wildcard": "wildcard", "prefix": "wildcard"}


def dsl_fields(query: Any) -> list[tuple[str, str]]:
    """(field, use) for each leaf of a DSL query (bool, term(s), match(_phrase), range, exists, wildcard)."""
    out: list[tuple[str, str]] = []
    if isinstance(query, list):
        for q in query:
            out += dsl_fields(q)
        return out
    if not isinstance(query, dict):
        return out
    for kind, body in query.items():
        if kind == "bool":
            for clause in ("must", "filter", "should", "must_not"):
                out += dsl_fields(body.get(clause, []))
        elif kind == "exists":
            out.append((body.get("field"), "exists"))
        elif kind in _LEAF_USE and isinstance(body, dict):
            out += [(name, _LEAF_USE[kind]) for name in body if name != "boost"]
        elif kind != "match_all":
            out.append((f"<{kind}>", "exists"))  # an unknown query kind: reported as an unmapped field
    return out


def validate(objects: Sequence[Obj], rules: Sequence[Obj] = (), connectors: Sequence[Obj] = (),
             fields: dict[str, dict[str, Any]] | None = None) -> list[str]:
    """Problems with a bundle in import form (empty: it passed)."""
    return Validator(fields).run(objects, rules, connectors)


def validate_dir(root: Path | None = None) -> list[str]:
    return validate(bundle.build(root), bundle.rules(root), bundle.connectors(root))
