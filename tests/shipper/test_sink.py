"""Stage 5, pure: NDJSON bodies, chunking, and what every item result means (the engine is faked)."""

from __future__ import annotations

from typing import Any

import orjson

from collector.contract.promtext import render
from shipper.bulk import Action, bulk_body, chunks, classify
from shipper.engines.base import EngineRejected, EngineUnavailable, SearchEngine
from shipper.provenance import Meta, Provenance
from shipper.sink import BulkSink
from shipper.stats import Stats


def _actions(n: int) -> list[Action]:
    return [Action(f"id-{i}", "logs-a-default", orjson.dumps({"n": i}), origin=Provenance(Meta("t", 0, i, 0), b"", "a"))
            for i in range(n)]


def test_bulk_body_is_create_ndjson() -> None:
    body = bulk_body(_actions(2))
    lines = body.split(b"\n")
    assert lines[-1] == b"" and len(lines) == 5
    assert orjson.loads(lines[0]) == {"create": {"_index": "logs-a-default", "_id": "id-0"}}
    assert orjson.loads(lines[3]) == {"n": 1}


def test_chunks_respect_the_byte_budget_and_never_drop() -> None:
    actions = _actions(100)
    parts = chunks(actions, 500)
    assert len(parts) > 1
    assert [a for part in parts for a in part] == actions
    assert all(len(bulk_body(part)) <= 600 for part in parts)


def _item(status: int, error: str | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {"status": status}
    if error:
        result["error"] = {"type": error, "reason": "why", "caused_by": {"reason": "because"}}
    return {"create": result}


def test_classify_reads_every_item() -> None:
    actions = _actions(5)
    response = {"errors": True, "items": [_item(201), _item(409, "version_conflict_engine_exception"),
                                          _item(429, "es_rejected_execution_exception"), _item(503, "unavailable"),
                                          _item(400, "mapper_parsing_exception")]}
    result = classify(response, actions)
    assert (result.done, result.duplicates, result.wait) == (actions[:2], actions[1:2], actions[2:3])
    assert [(f.action, f.error_type) for f in result.retry] == [(actions[3], "unavailable")]
    assert [(f.action, f.error_type, f.reason) for f in result.failed] == [
        (actions[4], "mapper_parsing_exception", "why: because")]


def test_classify_trusts_errors_false_and_distrusts_a_short_answer() -> None:
    actions = _actions(3)
    assert classify({"errors": False, "items": [_item(201)] * 3}, actions).done == actions
    blocked = {"errors": True, "items": [_item(403, "cluster_block_exception")] * 3}
    assert classify(blocked, actions).wait == actions  # disk full: wait, never dead-letter
    short = classify({"errors": True, "items": [_item(201)]}, actions)
    assert (short.done, short.wait) == ([], actions)
    # issue 20 item 2: "no errors" without one item per action indexes nothing
    for answer in ({"errors": False}, {"errors": False, "items": []}, {"errors": False, "items": [_item(201)] * 2},
                   {"errors": False, "items": [_item(201)] * 4}, {"errors": False, "items": None}):
        unaccounted = classify(answer, actions)
        assert (unaccounted.done, unaccounted.wait) == ([], actions)


def test_an_item_429_is_backpressure_not_a_failure() -> None:
    actions = _actions(3)
    overloaded = classify({"errors": True, "items": [_item(201), _item(429, "es_rejected_execution_exception"),
                                                     _item(429, "circuit_breaking_exception")]}, actions)
    assert (overloaded.done, overloaded.wait, overloaded.retry, overloaded.failed) == (
        actions[:1], actions[1:], [], [])
    assert overloaded.overloaded == 2


class FakeEngine(SearchEngine):
    """Answers from a script: a list of callables (actions in the body) -> response or exception."""

    name = "fake"

    def __init__(self, script: list[Any]) -> None:
        self.script = script
        self.bodies: list[bytes] = []

    async def bulk(self, body: bytes, gzip: bool = False) -> dict[str, Any]:
        self.bodies.append(body)
        step = self.script.pop(0) if self.script else "ok"
        ids = [orjson.loads(line)["create"]["_id"] for line in body.split(b"\n")[0::2] if line]
        if isinstance(step, Exception):
            raise step
        if step == "ok":
            return {"errors": False, "items": [_item(201) for _ in ids]}
        return {"errors": True, "items": [step(i) for i in ids]}

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        return {}

    async def close(self) -> None:
        return None


def _sink(engine: SearchEngine, stats: Stats, max_bytes: int = 1 << 20) -> BulkSink:
    return BulkSink(engine, stats, max_bytes=max_bytes, concurrency=2, retry_initial_s=0.001, retry_max_s=0.002)


async def test_only_failed_items_are_retried_until_they_succeed() -> None:
    stats = Stats()
    flaky = lambda doc_id: _item(429) if doc_id in ("id-1", "id-3") else _item(201)  # noqa: E731
    engine = FakeEngine([flaky, EngineUnavailable("down"), "ok"])
    failures = await _sink(engine, stats).write(_actions(5))
    assert failures == []
    assert stats.indexed == 5 and stats.retried == 4
    assert len(engine.bodies) == 3
    assert engine.bodies[1] == engine.bodies[2] == bulk_body([_actions(5)[1], _actions(5)[3]])


async def test_a_rejected_request_is_split_until_the_culprit_is_alone() -> None:
    stats = Stats()

    class Picky(FakeEngine):
        async def bulk(self, body: bytes, gzip: bool = False) -> dict[str, Any]:
            if b'"id-2"' in body:
                raise EngineRejected(413, "too large")
            return await super().bulk(body, gzip)

    failures = await _sink(Picky([]), stats).write(_actions(4))
    assert [(f.action.doc_id, f.error_type) for f in failures] == [("id-2", "request_413")]
    assert stats.indexed == 3


async def test_auth_failures_are_waited_out_not_dead_lettered() -> None:
    stats = Stats()
    waits: list[float] = []

    async def waiting(seconds: float) -> None:
        waits.append(seconds)

    engine = FakeEngine([EngineRejected(401, "unauthorized"), "ok"])
    assert await _sink(engine, stats).write(_actions(2), waiting) == []
    assert stats.indexed == 2 and len(waits) == 1


def test_prometheus_text_counts_and_escapes_labels() -> None:
    stats = Stats(consumed=3, indexed=2, dead_lettered=1)
    stats.item_errors['odd"type'] += 1
    stats.bulk.observe(0.02)
    stats.lag = {"elk-logs/0": 5}
    text = render(stats.prometheus(ready=True))
    assert "shipper_up 1\n" in text and "shipper_consumed_total 3\n" in text
    assert 'shipper_item_errors_total{type="odd\\"type"} 1' in text
    assert 'shipper_bulk_seconds_bucket{le="0.025"} 1' in text and "shipper_bulk_seconds_count 1" in text
    assert 'shipper_consumer_lag{topic="elk-logs",partition="0"} 5' in text
