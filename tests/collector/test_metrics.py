"""Counters, gauges, histograms: aggregated in-process, emitted as ECS metric documents."""

from __future__ import annotations

import time

import orjson

import collector
from collector.metrics import Registry
from collector.outputs.base import MetricBytes
from tests.collector.conftest import assert_ecs


def test_registry_aggregation():
    reg = Registry()
    c = reg.counter("jobs.done", unit="1")
    g = reg.gauge("queue.depth")
    h = reg.histogram("db.query.duration", unit="ms")
    for _ in range(3):
        c.inc(queue="a")
    c.inc(5, queue="b")
    g.set(10, queue="a")
    g.add(-4, queue="a")
    for v in range(1, 101):
        h.observe(float(v), table="users")
    docs = {(d["metric"]["name"], tuple(sorted(d.get("labels", {}).items()))): d["metric"] for d in reg.collect()}
    assert docs[("jobs.done", (("queue", "a"),))] == {"name": "jobs.done", "type": "counter", "unit": "1",
                                                     "value": 3, "delta": 3}
    assert docs[("jobs.done", (("queue", "b"),))]["value"] == 5
    assert docs[("queue.depth", (("queue", "a"),))]["value"] == 6
    hist = docs[("db.query.duration", (("table", "users"),))]
    assert (hist["count"], hist["sum"], hist["min"], hist["max"]) == (100, 5050.0, 1.0, 100.0)
    assert (hist["p50"], hist["p95"], hist["p99"]) == (51.0, 95.0, 99.0)
    # second interval: counter cumulative with a zero delta, histogram interval reset (no doc)
    c.inc(queue="a")
    second = [d["metric"] for d in reg.collect()]
    counters = [m for m in second if m["name"] == "jobs.done"]
    assert {(m["value"], m["delta"]) for m in counters} == {(4, 1), (5, 0)}
    assert not [m for m in second if m["type"] == "histogram"]


def test_type_conflict_rejected():
    reg = Registry()
    reg.counter("x")
    try:
        reg.gauge("x")
    except ValueError as exc:
        assert "counter" in str(exc)
    else:
        raise AssertionError("expected ValueError")


def test_periodic_emission_as_ecs_metric_documents():
    collector.configure(service="api-service", outputs="memory", metrics_interval=0.2)
    try:
        hits = collector.counter("test.periodic.hits")
        hits.inc(2, route="/a")
        deadline = time.monotonic() + 5
        mem = collector.outputs()["memory"]
        while time.monotonic() < deadline and not any(b"test.periodic.hits" in r for r in mem.records):
            time.sleep(0.05)
        doc_line = next(r for r in mem.records if b"test.periodic.hits" in r)
        assert type(doc_line) is MetricBytes  # routed to the metrics topic / endpoint
        doc = assert_ecs(doc_line)
        assert doc["event"] == {"kind": "metric", "dataset": "api_service"}
        assert doc["metric"] == {"name": "test.periodic.hits", "type": "counter", "unit": "", "value": 2, "delta": 2}
        assert doc["labels"] == {"route": "/a"}
        assert doc["message"] == "metric test.periodic.hits"
    finally:
        collector.shutdown()
    assert orjson.loads(bytes(doc_line))["service"]["name"] == "api-service"
