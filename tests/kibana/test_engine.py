"""Every Lens panel, saved search and rule, translated to the search DSL, runs on the real engine over
pipeline data the shipper wrote, and returns something (rules: would fire)."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest

from collector.contract.ecs import ECS_VERSION
from kibana import bundle, dsl
from tests.kibana.seed import SPIKE_ERRORS, SPIKE_SERVICE

pytestmark = pytest.mark.stack

OBJECTS = bundle.build()
RULES = bundle.rules()
NAMES = [p.name for p in dsl.probes(OBJECTS, RULES)]


def run(search_url: str, probe: dsl.Probe) -> list[str]:
    response = httpx.post(f"{search_url}/{probe.index}/_search", params={"ignore_unavailable": "true"},
                          json=probe.body, timeout=30)
    assert response.status_code == 200, f"{probe.name}: {response.status_code} {response.text[:500]}"
    return probe.check(response.json())


def test_every_panel_search_and_rule_has_a_probe() -> None:
    lens = {o["id"] for o in OBJECTS if o["type"] == "lens"}
    searches = {o["id"] for o in OBJECTS if o["type"] == "search"}
    assert {f"lens:{i}" for i in lens} | {f"search:{i}" for i in searches} <= set(NAMES)
    assert len(NAMES) == len(lens) + len(searches) + len(RULES)
    assert len(RULES) == 3


def test_seed_went_through_the_shipper(search_url: str, seeded: tuple[str, dict[str, int]]) -> None:
    namespace, counts = seeded

    def count(index: str, query: dict[str, Any] | None = None) -> int:
        body = {"query": query} if query else {}
        r = httpx.post(f"{search_url}/{index}-{namespace}/_count", json=body, timeout=30)
        return int(r.json()["count"])

    assert count("logs-elk.deadletter") == counts["dead"] == 3
    assert count("logs-*", {"term": {"service.name": SPIKE_SERVICE}}) >= SPIKE_ERRORS
    # transitions come from the shipper's health monitor, not from the seed
    assert count("logs-elk.health", {"term": {"event.action": "health-transition"}}) > 0
    assert count("logs-elk.health", {"term": {"event.action": "health-check"}}) == counts["probes"]
    assert count("metrics-elk.pipeline") == counts["pipeline"]


@pytest.mark.parametrize("name", NAMES)
def test_query_runs_and_finds_data(search_url: str, seeded: tuple[str, dict[str, int]], name: str) -> None:
    namespace, _ = seeded
    probe = next(p for p in dsl.probes(OBJECTS, RULES, namespace) if p.name == name)
    assert run(search_url, probe) == []


def test_probes_fail_without_data(search_url: str, seeded: tuple[str, dict[str, int]]) -> None:
    """The same checks on a namespace with no data all fail: they can tell empty from full."""
    probes = dsl.probes(OBJECTS, RULES, "tnodatahere")
    failed = [p.name for p in probes if run(search_url, p)]
    assert failed == [p.name for p in probes]


def _lens(obj_id: str) -> dict[str, Any]:
    return copy.deepcopy(next(o for o in OBJECTS if o["id"] == obj_id))


def test_probe_fails_on_a_field_the_data_never_sets(search_url: str, seeded: tuple[str, dict[str, int]]) -> None:
    namespace, _ = seeded
    obj = _lens("elk-lens-latency-percentiles")
    columns = obj["attributes"]["state"]["datasourceStates"]["formBased"]["layers"]["layer1"]["columns"]
    columns["p95"]["sourceField"] = "shipper.lag"  # mapped and numeric, but absent from service metrics
    views = {o["id"]: o["attributes"]["title"] for o in OBJECTS if o["type"] == "index-pattern"}
    problems = run(search_url, dsl.lens_probe(obj, views, namespace))
    assert problems and "p95" in problems[0]


def test_probe_fails_on_a_query_matching_nothing(search_url: str, seeded: tuple[str, dict[str, int]]) -> None:
    namespace, _ = seeded
    obj = _lens("elk-lens-top-errors")
    obj["attributes"]["state"]["query"]["query"] = 'log.level: "fatal-never"'
    views = {o["id"]: o["attributes"]["title"] for o in OBJECTS if o["type"] == "index-pattern"}
    assert run(search_url, dsl.lens_probe(obj, views, namespace)) == ["the panel's query matched no documents"]


def test_rule_probe_fails_below_threshold(search_url: str, seeded: tuple[str, dict[str, int]]) -> None:
    namespace, _ = seeded
    rule = copy.deepcopy(next(r for r in RULES if r["rule_type_id"] == ".index-threshold"
                              and r["params"]["termField"] == "service.name"))
    rule["params"]["threshold"] = [SPIKE_ERRORS + 10]  # more than the seed's spike
    problems = run(search_url, dsl.rule_probe(rule, namespace))
    assert problems and "would not fire" in problems[0]


@pytest.mark.parametrize("stream", ["logs-elk.health", "logs-elk.alerts", "logs-elk.deadletter",
                                    "metrics-elk.pipeline"])
def test_every_document_the_product_writes_carries_ecs_version(search_url: str, seeded: tuple[str, dict[str, int]],
                                                               stream: str) -> None:
    namespace, _ = seeded

    def count(query: dict[str, Any]) -> int:
        r = httpx.post(f"{search_url}/{stream}-{namespace}/_count", json={"query": query}, timeout=30)
        return int(r.json()["count"])

    assert count({"match_all": {}}) > 0
    assert count({"bool": {"must_not": [{"term": {"ecs.version": ECS_VERSION}}]}}) == 0
    if stream == "logs-elk.health":  # the transitions, built by the shipper's health monitor
        assert count({"bool": {"filter": [{"term": {"event.action": "health-transition"}},
                                          {"term": {"ecs.version": ECS_VERSION}}]}}) > 0
