"""Each panel's, saved search's and rule's query translated to the search DSL, with a check of the
engine's answer: what the validation runs on the real engine over seeded data.

The translation follows what Kibana sends (Lens: buckets nested in column order, metrics inside the
innermost bucket, per-column KQL filters as filter aggregations; rules: the query or KQL filter plus
the time window, grouped by the term field) closely enough that an unmapped, misspelt or empty field
makes the check fail.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kibana import kql
from kibana.bundle import Obj, decode

RECORDS = "___records___"
_METRIC_AGG = {"average": "avg", "sum": "sum", "min": "min", "max": "max", "unique_count": "cardinality"}
_COMPARE: dict[str, Callable[[float, list[float]], bool]] = {
    ">": lambda v, t: v > t[0], ">=": lambda v, t: v >= t[0], "<": lambda v, t: v < t[0],
    "<=": lambda v, t: v <= t[0], "between": lambda v, t: t[0] <= v <= t[1],
    "notBetween": lambda v, t: not t[0] <= v <= t[1],
}


@dataclass
class Probe:
    """One search to run: `check(response)` returns the problems with the answer (none: it passed)."""

    name: str
    index: str
    body: dict[str, Any]
    check: Callable[[dict[str, Any]], list[str]] = field(repr=False)


def scope_pattern(title: str, namespace: str | None) -> str:
    """`logs-*-*,-logs-elk.*-*` -> `logs-*-ns,-logs-elk.*-ns`: a test's data only."""
    if not namespace:
        return title
    return ",".join(p[:-1] + namespace if p.endswith("-*") else p for p in title.split(","))


def _decoded(obj: Obj) -> Obj:
    out, errors = decode(obj)
    if errors:
        raise ValueError(f"{obj.get('type')}:{obj.get('id')}: {errors[0]}")
    return out


def _data_views(objects: list[Obj]) -> dict[str, str]:
    return {str(o["id"]): str(o["attributes"]["title"]) for o in objects if o.get("type") == "index-pattern"}


# ---- Lens

def _metric_agg(col: dict[str, Any]) -> dict[str, Any] | None:
    """The aggregation computing one metric column (None: doc_count of the enclosing bucket)."""
    op, src = col["operationType"], col.get("sourceField")
    params = col.get("params") or {}
    inner: dict[str, Any] | None
    if op == "count":
        inner = None if src in (None, RECORDS) else {"value_count": {"field": src}}
    elif op in _METRIC_AGG:
        inner = {_METRIC_AGG[op]: {"field": src}}
    elif op == "median":
        inner = {"percentiles": {"field": src, "percents": [50]}}
    elif op == "percentile":
        inner = {"percentiles": {"field": src, "percents": [params.get("percentile", 95)]}}
    elif op == "last_value":
        sort_field = params.get("sortField", "@timestamp")
        inner = {"top_hits": {"size": 1, "sort": [{sort_field: {"order": "desc"}}], "_source": {"includes": [src]}}}
    else:
        raise ValueError(f"unsupported Lens operation {op!r}")
    if col.get("filter"):
        return {"filter": kql.query_dsl(col["filter"]), **({"aggs": {"v": inner}} if inner else {})}
    return inner


def _get_path(source: dict[str, Any], path: str) -> Any:
    if path in source:
        return source[path]
    node: Any = source
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _metric_value(col: dict[str, Any], bucket: dict[str, Any], col_id: str) -> Any:
    agg = bucket.get(col_id)
    if col.get("filter") and agg is not None:
        bucket = agg
        agg = agg.get("v")
        if agg is None:  # filtered count
            return bucket.get("doc_count") or None
    if agg is None:  # plain count
        return bucket.get("doc_count") or None
    if "hits" in agg:
        hits = agg["hits"]["hits"]
        return _get_path(hits[0]["_source"], col["sourceField"]) if hits else None
    if "values" in agg:
        values = agg["values"]
        return next(iter(values.values()), None) if isinstance(values, dict) else None
    return agg.get("value")


def lens_probe(obj: Obj, data_views: dict[str, str], namespace: str | None = None) -> Probe:
    obj = _decoded(obj)
    state = obj["attributes"]["state"]
    refs = {r["name"]: r["id"] for r in obj.get("references", [])}
    layers = state["datasourceStates"]["formBased"]["layers"]
    if len(layers) != 1:
        raise ValueError("the probe handles one data layer per Lens panel")
    layer_id, layer = next(iter(layers.items()))
    index = scope_pattern(data_views[refs[f"indexpattern-datasource-layer-{layer_id}"]], namespace)
    columns: dict[str, Any] = layer["columns"]
    order = [c for c in layer["columnOrder"] if c in columns]
    buckets = [c for c in order if columns[c]["isBucketed"]]
    metrics = [c for c in order if not columns[c]["isBucketed"]]
    metric_aggs = {c: a for c in metrics if (a := _metric_agg(columns[c])) is not None}

    aggs: dict[str, Any] = dict(metric_aggs)
    for col_id in reversed(buckets):
        col = columns[col_id]
        params = col.get("params") or {}
        if col["operationType"] == "date_histogram":
            agg: dict[str, Any] = {"date_histogram": {"field": col["sourceField"], "fixed_interval": "1m",
                                                      "min_doc_count": 1}}
        elif col["operationType"] == "terms":
            terms: dict[str, Any] = {"field": col["sourceField"], "size": int(params.get("size", 5))}
            order_by = params.get("orderBy") or {}
            direction = params.get("orderDirection", "desc")
            sub: dict[str, Any] = {}
            if order_by.get("type") == "alphabetical":
                terms["order"] = {"_key": direction}
            elif order_by.get("type") == "column":
                target = order_by["columnId"]
                if target in metric_aggs and "filter" not in metric_aggs[target] and "top_hits" not in metric_aggs[
                        target] and "percentiles" not in metric_aggs[target]:
                    terms["order"] = {f"o_{target}": direction}
                    sub[f"o_{target}"] = metric_aggs[target]
                else:
                    terms["order"] = {"_count": direction}
            agg = {"terms": terms}
            aggs = {**sub, **aggs}
        else:
            raise ValueError(f"unsupported Lens bucket operation {col['operationType']!r}")
        if aggs:
            agg["aggs"] = aggs
        aggs = {col_id: agg}

    query = {"bool": {"filter": [kql.query_dsl(state.get("query") or {})]}}
    body = {"size": 0, "track_total_hits": True, "query": query, "aggs": aggs}

    def rows(node: dict[str, Any], level: int) -> list[dict[str, Any]]:
        if level == len(buckets):
            return [node]
        out: list[dict[str, Any]] = []
        for b in node.get(buckets[level], {}).get("buckets", []):
            out += rows(b, level + 1)
        return out

    def check(response: dict[str, Any]) -> list[str]:
        total = response.get("hits", {}).get("total", {})
        if (total.get("value") if isinstance(total, dict) else total) in (0, None):
            return ["the panel's query matched no documents"]
        root = {**response.get("aggregations", {}), "doc_count": total.get("value") if isinstance(total, dict)
                else total}
        found = rows(root, 0)
        if not found:
            return ["no buckets"]
        complete = [r for r in found if all(_metric_value(columns[m], r, m) is not None for m in metrics)]
        if not complete:
            empty = [columns[m]["label"] for m in metrics
                     if all(_metric_value(columns[m], r, m) is None for r in found)]
            return [f"no bucket has a value for {', '.join(empty) or 'every metric'}"]
        return []

    return Probe(f"lens:{obj['id']}", index, body, check)


# ---- saved searches

def search_probe(obj: Obj, data_views: dict[str, str], namespace: str | None = None) -> Probe:
    obj = _decoded(obj)
    source = obj["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"]
    refs = {r["name"]: r["id"] for r in obj.get("references", [])}
    index = scope_pattern(data_views[refs[source["indexRefName"]]], namespace)
    sort = [{f: {"order": d}} for f, d in obj["attributes"].get("sort", [])]
    body = {"size": 5, "track_total_hits": True, "query": kql.query_dsl(source.get("query") or {}), "sort": sort}
    columns = obj["attributes"].get("columns", [])

    def check(response: dict[str, Any]) -> list[str]:
        hits = response.get("hits", {}).get("hits", [])
        if not hits:
            return ["the saved search matched no documents"]
        missing = [c for c in columns if all(_get_path(h["_source"], c) is None for h in hits)]
        return [f"columns never set in the newest hits: {missing}"] if missing == columns else []

    return Probe(f"search:{obj['id']}", index, body, check)


# ---- rules

def _window(params: dict[str, Any]) -> dict[str, Any]:
    return {"range": {params["timeField"]: {"gte": f"now-{params['timeWindowSize']}{params['timeWindowUnit']}",
                                            "lte": "now"}}}


def rule_probe(rule: Obj, namespace: str | None = None) -> Probe:
    """Runs the rule's search over its time window; passes when the rule would fire."""
    params = rule["params"]
    index = ",".join(scope_pattern(i, namespace) for i in params["index"])
    compare = _COMPARE[params["thresholdComparator"]]
    threshold = [float(t) for t in params["threshold"]]
    name = f"rule:{rule.get('name')}"
    if rule["rule_type_id"] == ".es-query":
        es_query = params["esQuery"]
        es_query = json.loads(es_query) if isinstance(es_query, str) else es_query
        body = {"size": int(params.get("size", 10)), "track_total_hits": True,
                "query": {"bool": {"filter": [es_query["query"], _window(params)]}}}

        def check_es(response: dict[str, Any]) -> list[str]:
            total = response.get("hits", {}).get("total", {}).get("value", 0)
            return [] if compare(float(total), threshold) else [f"{total} hits: the rule would not fire"]

        return Probe(name, index, body, check_es)

    if rule["rule_type_id"] != ".index-threshold":
        raise ValueError(f"unsupported rule type {rule['rule_type_id']!r}")
    filters = [_window(params)]
    if params.get("filterKuery"):
        filters.append(kql.to_dsl(kql.parse(params["filterKuery"])))
    agg_type = params.get("aggType", "count")
    metric: dict[str, Any] = {}
    if agg_type != "count":
        metric = {"m": {{"avg": "avg"}.get(agg_type, agg_type): {"field": params["aggField"]}}}
    if params.get("groupBy") == "top":
        group = {"terms": {"field": params["termField"], "size": int(params.get("termSize", 10))}}
        if metric:
            group["aggs"] = metric
        aggs = {"g": group}
    else:
        aggs = dict(metric)
    body = {"size": 0, "track_total_hits": True, "query": {"bool": {"filter": filters}}, "aggs": aggs}

    def value(node: dict[str, Any]) -> float:
        return float(node["m"]["value"] or 0) if metric else float(node["doc_count"])

    def check_threshold(response: dict[str, Any]) -> list[str]:
        if params.get("groupBy") == "top":
            groups = response.get("aggregations", {}).get("g", {}).get("buckets", [])
            values = {b["key"]: value(b) for b in groups}
        else:
            total = response.get("hits", {}).get("total", {}).get("value", 0)
            values = {"all": value({**response.get("aggregations", {}), "doc_count": total})}
        if not any(compare(v, threshold) for v in values.values()):
            return [f"values {values}: the rule would not fire"]
        return []

    return Probe(name, index, body, check_threshold)


def probes(objects: list[Obj], rules: Sequence[Obj] = (), namespace: str | None = None) -> list[Probe]:
    """A probe for every Lens panel and saved search of the bundle (import form) and every rule."""
    views = _data_views([_decoded(o) for o in objects])
    out: list[Probe] = []
    for obj in objects:
        if obj.get("type") == "lens":
            out.append(lens_probe(obj, views, namespace))
        elif obj.get("type") == "search":
            out.append(search_probe(obj, views, namespace))
    out += [rule_probe(r, namespace) for r in rules]
    return out
