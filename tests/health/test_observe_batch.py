"""`HealthMonitor.observe_batch` (the shipper's call, once per batch) is `observe` for each record in
order: same signals, same health state, same documents, same failures. Pure units, no servers."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import orjson

from bench.bench_shipper import generate
from collector.contract.timefmt import format_epoch
from shipper.context import Batch, TransformSettings
from shipper.fast import enrich_route
from shipper.health.config import HealthSettings
from shipper.health.monitor import HealthMonitor
from shipper.monitor import observe_each
from shipper.provenance import Meta

TOPICS = ["elk-logs", "elk-health"]


def probe(service: str, node: str, status: str, ts: float) -> dict[str, Any]:
    return {"@timestamp": format_epoch(ts), "event": {"action": "health-check", "dataset": "elk.health"},
            "service": {"name": service, "node": {"name": node}}, "health": {"status": status}}


def batch_records() -> list[tuple[dict[str, Any], Meta]]:
    """The benchmark's records enriched as the shipper does, with probe results, a removal, records the
    monitor cannot read and odd shapes among them."""
    now_ms = int(time.time() * 1000)
    batch = Batch(TransformSettings(host_name="t"), datetime.now(UTC))
    seen: list[tuple[dict[str, Any], Meta]] = []
    for i, (key, value) in enumerate(generate(600)):
        message = Meta("elk-logs", i % 4, i, now_ms, key, (), value)
        seen.append((enrich_route(orjson.loads(value), message, batch)[0], message))
    now = time.time()
    extra: list[dict[str, Any]] = [
        probe("api-service", "a1", "down", now - 2), probe("api-service", "a1", "down", now - 1),
        probe("api-service", "a1", "down", now), probe("orders", "o1", "up", now),
        {**probe("orders", "o1", "up", now), "event": {"action": "health-removed", "dataset": "elk.health"}},
        {"event": "not an object", "service": {"name": "api-service"}, "@timestamp": format_epoch(now)},
        {"event": {}, "service": {"name": 7}, "@timestamp": format_epoch(now)},
        {"event": {}, "service": "flat", "@timestamp": format_epoch(now)},
        {"event": {"dataset": "elk.health", "action": "health-check"}, "service": {"name": ["x"]}},  # raises
        {"event": {}, "service": {"name": "api-service"}, "@timestamp": "not a time", "log": {"level": "error"}},
    ]
    for j, record in enumerate(extra):
        seen.insert(37 * j + 5, (record, Meta("elk-health", 0, 10_000 + j, now_ms, None, (), b"{}")))
    return seen


def state(monitor: HealthMonitor) -> Any:
    signals = monitor.signals
    return (signals.freshest_ts,
            {n: (s.max_ts, s.min_ts, s.records, s.errors) for n, s in signals.streams.items()},
            {n: (s.state, sorted(s.instances)) for n, s in monitor.state.services.items()})


def what(docs: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    """The documents less what depends on the wall clock (an alert's id and times)."""
    return [(doc_id if "alert" not in doc else None, doc["event"]["action"], doc["service"]["name"])
            for doc_id, doc in docs]


def pair(assigned: list[tuple[str, int]] | None) -> tuple[HealthMonitor, HealthMonitor]:
    monitors = []
    for _ in range(2):
        monitor = HealthMonitor(HealthSettings(), "default", topics=TOPICS if assigned is not None else None,
                                health_topics=frozenset({"elk-health"}))
        if assigned is not None:
            monitor.owner.assign(assigned, {"elk-logs": 4, "elk-health": 4})
        monitors.append(monitor)
    return monitors[0], monitors[1]


def test_observe_batch_is_observe_per_record() -> None:
    seen = batch_records()
    for assigned in (None, [("elk-logs", 0), ("elk-logs", 2), ("elk-health", 1)], [("elk-logs", 1)]):
        batched, each = pair(assigned)
        for _ in range(2):  # twice: the same records again (a redelivery) too
            docs, failures = batched.observe_batch(seen)
            docs_each, failures_each = observe_each(each, seen)
            assert what(docs) == what(docs_each)
            assert [repr(e) for e in failures] == [repr(e) for e in failures_each]
            assert state(batched) == state(each)
        assert len(failures) == 1
        if assigned is None:  # the probes produced transitions; owning everything, all the streams are seen
            assert docs and len(batched.signals.streams) >= 5
