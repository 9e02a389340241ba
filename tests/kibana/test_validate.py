"""Offline validation: the bundle passes, and each check fails on an object broken its way."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from kibana import bundle, kql
from kibana.validate import validate, validate_dir

OBJECTS = bundle.build()
RULES = bundle.rules()
CONNECTORS = bundle.connectors()
Obj = dict[str, Any]


def test_bundle_is_clean() -> None:
    assert validate_dir() == []


def test_bundle_holds_what_the_issue_asks() -> None:
    by_type: dict[str, set[str]] = {}
    for o in OBJECTS:
        by_type.setdefault(o["type"], set()).add(o["id"])
    assert {"elk-logs", "elk-metrics", "elk-health", "elk-alerts", "elk-deadletter"} <= by_type["index-pattern"]
    assert by_type["dashboard"] == {"elk-dashboard-services", "elk-dashboard-service-detail", "elk-dashboard-pipeline"}
    assert {"elk-search-errors", "elk-search-unhealthy-transitions", "elk-search-deadletters"} <= by_type["search"]
    assert {r["rule_type_id"] for r in RULES} == {".es-query", ".index-threshold"}
    assert {c["connector_type_id"] for c in CONNECTORS} == {".server-log", ".webhook"}
    assert "visualization" not in by_type  # Lens only, no legacy visualizations
    detail = next(o for o in OBJECTS if o["id"] == "elk-dashboard-service-detail")
    controls = json.loads(detail["attributes"]["controlGroupInput"]["panelsJSON"])
    assert [c["explicitInput"]["fieldName"] for c in controls.values()] == ["service.name"]


def test_sources_are_pretty_decoded_json_one_object_per_file() -> None:
    files = sorted(bundle.OBJECTS_DIR.glob("*/*.json"))
    assert len(files) == len(OBJECTS) + len(RULES) + len(CONNECTORS)
    for path in files:
        text = path.read_text()
        obj = json.loads(text)
        assert text == json.dumps(obj, indent=2, ensure_ascii=False) + "\n", path
        if obj["type"] in bundle.SAVED_TYPES:
            assert path.parent.name == obj["type"]
            for attr in bundle.ENCODED[obj["type"]]:
                holder = obj["attributes"]
                for key in attr.split("."):
                    holder = holder.get(key) if isinstance(holder, dict) else None
                assert not isinstance(holder, str), f"{path}: {attr} should be kept decoded"


def test_ndjson_round_trip_and_string_attributes() -> None:
    data = bundle.ndjson(OBJECTS)
    assert data.count(b"\n") == len(OBJECTS)
    assert bundle.parse_ndjson(data) == OBJECTS
    dash = next(o for o in OBJECTS if o["type"] == "dashboard")
    assert isinstance(dash["attributes"]["panelsJSON"], str)
    assert isinstance(json.loads(dash["attributes"]["panelsJSON"]), list)


# ---- each check, failing on a broken object

def _edit(obj_id: str, fn: Callable[[Obj], None]) -> Callable[[list[Obj]], None]:
    """Decode one object, let fn break it, encode it again."""
    def mutate(objects: list[Obj]) -> None:
        i = next(n for n, o in enumerate(objects) if o["id"] == obj_id)
        plain, errors = bundle.decode(objects[i])
        assert not errors
        fn(plain)
        objects[i] = bundle.encode(plain)
    return mutate


def _raw(obj_id: str, fn: Callable[[Obj], None]) -> Callable[[list[Obj]], None]:
    def mutate(objects: list[Obj]) -> None:
        fn(next(o for o in objects if o["id"] == obj_id))
    return mutate


def _col(obj: Obj, col: str) -> Obj:
    layers = obj["attributes"]["state"]["datasourceStates"]["formBased"]["layers"]
    return next(iter(layers.values()))["columns"][col]


def _panel(obj: Obj, n: int) -> Obj:
    panel: Obj = obj["attributes"]["panelsJSON"][n]
    return panel


def _set(path: str, value: Any) -> Callable[[Obj], None]:
    def fn(obj: Obj) -> None:
        *parents, last = path.split("/")
        node: Any = obj
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if value is _DELETE:
            del node[last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return fn


_DELETE = object()
SERVICES = "elk-dashboard-services"
DETAIL = "elk-dashboard-service-detail"
VOLUME = "elk-lens-log-volume-by-service"
ERRORS = "elk-search-errors"
LENS_STATE = "attributes/state"


def _dup(objects: list[Obj]) -> None:
    objects.append(copy.deepcopy(objects[-1]))


def _del_layer_ref(obj: Obj) -> None:
    obj["references"] = [r for r in obj["references"] if not r["name"].startswith("indexpattern-datasource-layer")]


def _del_control_ref(obj: Obj) -> None:
    obj["references"] = [r for r in obj["references"] if not r["name"].startswith("controlGroup_")]


def _control_field(field: str) -> Callable[[Obj], None]:
    def fn(obj: Obj) -> None:
        for control in obj["attributes"]["controlGroupInput"]["panelsJSON"].values():
            control["explicitInput"]["fieldName"] = field
    return fn


OBJECT_CASES: list[tuple[str, Callable[[list[Obj]], None], str]] = [
    ("no type", _raw(VOLUME, _set("type", _DELETE)), "no type"),
    ("no id", _raw(VOLUME, _set("id", _DELETE)), "without an id"),
    ("duplicate id", _dup, "id used 2 times"),
    ("unknown type", _raw(VOLUME, _set("type", "visualization")), "unexpected type"),
    ("dangling reference", _edit(SERVICES, lambda o: o["references"][0].update(id="elk-lens-gone")),
     "is not in the bundle"),
    ("panel without type", _edit(SERVICES, lambda o: _panel(o, 0).pop("type")), "no type (the dashboard"),
    ("panelRefName unmatched", _edit(SERVICES, lambda o: _panel(o, 1).update(panelRefName="panel_p9")),
     "matches no reference"),
    # Kibana strips "<panelIndex>:" from the reference names before looking panelRefName up
    ("panelRefName carrying the reference's prefix",
     _edit(SERVICES, lambda o: _panel(o, 1).update(panelRefName=f"{_panel(o, 1)['panelIndex']}:panel_"
                                                                 f"{_panel(o, 1)['panelIndex']}")),
     "Could not find reference"),
    ("panelRefName of another panel", _edit(SERVICES, lambda o: _panel(o, 1).update(panelRefName="panel_p1")),
     "matches no reference"),
    ("panel type differs from reference", _edit(DETAIL, lambda o: _panel(o, 4).update(type="lens")),
     "but its reference is a 'search'"),
    ("panelsJSON not JSON", _raw(SERVICES, lambda o: o["attributes"].update(panelsJSON='[{"type":')),
     "panelsJSON is not valid JSON"),
    ("searchSourceJSON not JSON",
     _raw(ERRORS, lambda o: o["attributes"]["kibanaSavedObjectMeta"].update(searchSourceJSON="{query")),
     "searchSourceJSON is not valid JSON"),
    ("control panelsJSON not JSON",
     _raw(DETAIL, lambda o: o["attributes"]["controlGroupInput"].update(panelsJSON="{")),
     "controlGroupInput.panelsJSON is not valid JSON"),
    ("lens layer without data view reference", _edit(VOLUME, _del_layer_ref),
     "no index-pattern reference 'indexpattern-datasource-layer-layer1'"),
    ("lens accessor not a column",
     _edit(VOLUME, lambda o: o["attributes"]["state"]["visualization"]["layers"][0].update(splitAccessor="nope")),
     "accessor 'nope' is not a column"),
    ("datatable column not a column",
     _edit("elk-lens-top-errors", lambda o: o["attributes"]["state"]["visualization"]["columns"].append(
         {"columnId": "ghost"})), "accessor 'ghost'"),
    ("metric accessor not a column",
     _edit("elk-lens-error-count", lambda o: o["attributes"]["state"]["visualization"].update(metricAccessor="x")),
     "accessor 'x'"),
    ("columnOrder differs", _edit(VOLUME, lambda o: next(iter(
        o["attributes"]["state"]["datasourceStates"]["formBased"]["layers"].values()))["columnOrder"].pop()),
     "columnOrder must list"),
    ("grid wider than 48", _edit(SERVICES, lambda o: _panel(o, 1)["gridData"].update(x=40)),
     "does not fit 48 columns"),
    ("panels overlap", _edit(SERVICES, lambda o: _panel(o, 2)["gridData"].update(y=5)), "overlaps panel"),
    ("unknown field in lens", _edit(VOLUME, lambda o: _col(o, "svc").update(sourceField="service.nmae")),
     "'service.nmae' is not in the shipper's index templates"),
    ("terms on a text field", _edit(VOLUME, lambda o: _col(o, "svc").update(sourceField="error.message")),
     "terms needs"),
    ("average on a keyword", _edit("elk-lens-latency-percentiles",
                                   lambda o: _col(o, "p50").update(sourceField="service.name")), "numeric needs"),
    ("histogram on a keyword", _edit(VOLUME, lambda o: _col(o, "ts").update(sourceField="service.name")),
     "date needs"),
    ("unknown operation", _edit(VOLUME, lambda o: _col(o, "n").update(operationType="formula")),
     "operation 'formula'"),
    ("max of a date with an ordinal scale", _edit("elk-lens-current-health", lambda o: _col(o, "since").update(
        scale="ordinal")), "Lens builds max columns with 'ratio'"),
    ("max of a date typed as a number", _edit("elk-lens-current-health", lambda o: _col(o, "since").update(
        dataType="number")), "Lens gives max of this field 'date'"),
    ("terms with an interval scale", _edit(VOLUME, lambda o: _col(o, "svc").update(scale="interval")),
     "Lens builds terms columns with 'ordinal'"),
    ("last_value of a keyword with a ratio scale", _edit("elk-lens-current-health", lambda o: _col(
        o, "state").update(scale="ratio")), "Lens builds last_value columns with 'ordinal'"),
    ("lens KQL on unknown field",
     _edit(VOLUME, _set(f"{LENS_STATE}/query", {"query": "level: error", "language": "kuery"})),
     "'level' is not in the shipper's index templates"),
    ("lens column filter on unknown field",
     _edit("elk-lens-current-health", lambda o: _col(o, "state").update(
         filter={"query": "health.too: *", "language": "kuery"})), "'health.too'"),
    ("unparsable KQL", _edit(ERRORS, lambda o: o["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"].update(
        query={"query": "log.level: (error or", "language": "kuery"})), "query 'log.level: (error or'"),
    ("lucene query", _edit(ERRORS, lambda o: o["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"].update(
        query={"query": "log.level:error", "language": "lucene"})), "only KQL is checked"),
    ("wildcard on text", _edit(ERRORS, lambda o: o["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"].update(
        query={"query": "message: time*", "language": "kuery"})), "wildcard needs"),
    ("search on a stored-only field",
     _edit("elk-search-deadletters", lambda o: o["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"].update(
         query={"query": 'dead_letter.original: "x"', "language": "kuery"})), "not indexed"),
    ("range on keyword", _edit(ERRORS, lambda o: o["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"].update(
        query={"query": "service.name >= 3", "language": "kuery"})), "range needs"),
    ("search column unknown", _edit(ERRORS, lambda o: o["attributes"]["columns"].append("error.msg")),
     "'error.msg' is not in the shipper's index templates"),
    ("search sort on text", _edit(ERRORS, _set("attributes/sort", [["message", "desc"]])), "sort needs"),
    ("search without data view reference", _edit(ERRORS, _set("references", [])), "indexRefName"),
    ("filter pills", _edit(VOLUME, _set(f"{LENS_STATE}/filters", [{"meta": {}, "query": {}}])), "filter pills"),
    ("control on a text field", _edit(DETAIL, _control_field("message")), "terms needs"),
    ("control without data view reference", _edit(DETAIL, _del_control_ref), "controlGroup_ctrl-service"),
    ("control id differs from its key", _edit(DETAIL, lambda o: next(iter(
        o["attributes"]["controlGroupInput"]["panelsJSON"].values()))["explicitInput"].update(id="other")),
     "explicitInput.id 'other' must equal"),
    ("service data view counting the product's own streams", _edit("elk-logs", _set("attributes/title",
                                                                                     "logs-*-*")),
     "the product's own elk.* streams left out"),
    ("data view pattern off-scheme", _edit("elk-logs", _set("attributes/title", "logs*")), "not of the form"),
    ("export from a newer Kibana", _raw("elk-dashboard-pipeline", lambda o: o.update(typeMigrationVersion="10.2.0")),
     "model version"),
    ("core version newer than supported", _raw("elk-logs", lambda o: o.update(coreMigrationVersion="9.1.0")),
     "newer than Kibana 8.11.0"),
    ("data view time field not a date", _edit("elk-logs", _set("attributes/timeFieldName", "message")),
     "date needs"),
]


@pytest.mark.parametrize(("case", "mutate", "expected"), OBJECT_CASES, ids=[c[0] for c in OBJECT_CASES])
def test_check_fails_on_broken_object(case: str, mutate: Callable[[list[Obj]], None], expected: str) -> None:
    objects = copy.deepcopy(OBJECTS)
    mutate(objects)
    problems = validate(objects, RULES, CONNECTORS)
    assert any(expected in p for p in problems), f"{case}: {problems}"


def _rule(name: str, fn: Callable[[Obj], None]) -> Callable[[list[Obj]], None]:
    def mutate(rules: list[Obj]) -> None:
        fn(next(r for r in rules if r["name"] == name))
    return mutate


UNHEALTHY, SPIKE, DEAD = "elk: service unhealthy", "elk: error spike", "elk: dead letters growing"
RULE_CASES: list[tuple[str, Callable[[list[Obj]], None], str]] = [
    ("id not a UUID", _rule(SPIKE, _set("id", "error-spike")), "must be UUIDs"),
    ("id a UUID of another version", _rule(SPIKE, _set("id", "a3f0c6d2-1b7e-3d8a-9c31-6e2b5f4d7a02")),
     "must be UUIDs (v1 or v4)"),
    ("unknown rule type", _rule(SPIKE, _set("rule_type_id", ".geo-containment")), "is not .es-query"),
    ("wrong action group", _rule(UNHEALTHY, _set("action_template/group", "threshold met")),
     "action group must be 'query matched'"),
    ("term field is text", _rule(SPIKE, _set("params/termField", "message")), "terms needs"),
    ("kuery on unknown field", _rule(SPIKE, _set("params/filterKuery", "loglevel: error")), "'loglevel'"),
    ("esQuery on unknown field", _rule(UNHEALTHY, lambda r: r["params"]["esQuery"]["query"]["bool"]["filter"].append(
        {"term": {"health.state.now": "x"}})), "'health.state.now'"),
    ("esQuery not JSON", _rule(UNHEALTHY, _set("params/esQuery", "{query")), "esQuery is not JSON"),
    ("time field not a date", _rule(DEAD, _set("params/timeField", "event.kind")), "date needs"),
    ("index off-scheme", _rule(DEAD, _set("params/index", ["deadletters"])), "not of the form"),
    ("error spike counting the product's own streams", _rule(SPIKE, _set("params/index", ["logs-*-*"])),
     "the product's own elk.* streams left out"),
    ("between needs two thresholds", _rule(DEAD, _set("params/thresholdComparator", "between")),
     "threshold must be a list of 2"),
]


@pytest.mark.parametrize(("case", "mutate", "expected"), RULE_CASES, ids=[c[0] for c in RULE_CASES])
def test_check_fails_on_broken_rule(case: str, mutate: Callable[[list[Obj]], None], expected: str) -> None:
    rules = copy.deepcopy(RULES)
    mutate(rules)
    problems = validate(OBJECTS, rules, CONNECTORS)
    assert any(expected in p for p in problems), f"{case}: {problems}"


def test_check_fails_on_broken_connector() -> None:
    connectors = copy.deepcopy(CONNECTORS)
    connectors[0]["id"] = "server-log"
    connectors[1]["connector_type_id"] = ".pagerduty-ish"
    problems = validate(OBJECTS, RULES, connectors)
    assert any("connector ids must be UUIDs" in p for p in problems)
    assert any("'.pagerduty-ish' is not supported" in p for p in problems)


# ---- KQL subset

@pytest.mark.parametrize(("text", "dsl"), [
    ("", {"match_all": {}}),
    ('event.action: "health-transition"', {"match_phrase": {"event.action": "health-transition"}}),
    ("log.level: (error or critical)", {"bool": {"should": [{"match": {"log.level": "error"}},
                                                            {"match": {"log.level": "critical"}}],
                                                 "minimum_should_match": 1}}),
    ("error.type: * and not service.name: web*",
     {"bool": {"filter": [{"exists": {"field": "error.type"}},
                          {"bool": {"must_not": [{"wildcard": {"service.name": {"value": "web*"}}}]}}]}}),
    ("http.response.status_code >= 500", {"range": {"http.response.status_code": {"gte": "500"}}}),
])
def test_kql_to_dsl(text: str, dsl: dict[str, Any]) -> None:
    assert kql.to_dsl(kql.parse(text)) == dsl


@pytest.mark.parametrize("text", ["log.level:", "(a: b", "free text", "a: (b or", "a: b c: d", "a >= (1)"])
def test_kql_rejects_what_it_cannot_check(text: str) -> None:
    with pytest.raises(kql.KqlError):
        kql.parse(text)


def test_multi_fields_of_the_templates_count_as_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    from kibana.validate import Validator, template_fields
    from shipper import templates

    props = copy.deepcopy(templates.ECS_PROPERTIES)
    props["error"]["properties"]["message"]["fields"] = {"keyword": {"type": "keyword", "ignore_above": 1024}}
    monkeypatch.setattr(templates, "ECS_PROPERTIES", props)
    v = Validator(template_fields())
    v.field("x", "error.message.keyword", "terms")
    assert v.problems == []
    v.field("x", "error.message", "terms")
    assert len(v.problems) == 1 and "'error.message' is match_only_text; terms needs" in v.problems[0]
