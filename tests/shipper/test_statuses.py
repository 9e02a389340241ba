"""Issue 12 item 8: the status table, row by row. Every row of shipper.statuses is exercised
through a real adapter (OpenSearch's and Elasticsearch's clients) and the bulk sink against an
imitation engine on loopback, and the docs carry the same table."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from shipper import statuses
from shipper.bulk import Action
from shipper.engines.base import SearchEngine
from shipper.engines.elasticsearch import ElasticsearchEngine
from shipper.engines.opensearch import OpenSearchEngine
from shipper.provenance import Meta, Provenance
from shipper.sink import EXHAUSTED, BulkSink
from shipper.stats import Stats
from shipper.statuses import NO_ANSWER, NOT_BULK, Verdict
from tests.shipper.imitation import DROP, Answer, ImitationEngine, items

REPO = Path(__file__).resolve().parents[2]
MAX_RETRIES = 2  # answers of a "retry" row after the first one: the imitation's clock ticks once per request
HTML = Answer(200, b"<html><body>502 Bad Gateway</body></html>", "text/html")


def _error(kind: str) -> dict[str, Any]:
    return {"type": kind, "reason": f"{kind} happened"}


# (status, error.type) -> how the imitation answers the whole request
REQUEST_CASES: list[tuple[int, Answer | str]] = [
    (NO_ANSWER, DROP),
    (NOT_BULK, HTML),
    (NOT_BULK, Answer(200, {"took": 1, "errors": True, "items": []})),  # not one item per action
    # "no errors" proves nothing without one item per action (issue 20 item 2)
    (NOT_BULK, Answer(200, {"took": 1, "errors": False})),
    (NOT_BULK, Answer(200, {"took": 1, "errors": False, "items": [{"create": {"status": 201}}]})),
    (408, Answer(408, {"error": _error("timeout")})),
    (429, Answer(429, {"error": _error("es_rejected_execution_exception")})),
    (502, Answer(502, b"bad gateway", "text/plain")),
    (503, Answer(503, {"error": _error("unavailable")})),
    (401, Answer(401, {"error": _error("security_exception")})),
    (403, Answer(403, {"error": _error("security_exception")})),
    (400, Answer(400, {"error": _error("parse_exception")})),
    (413, Answer(413, b"", "text/plain")),
]

ITEM_CASES: list[tuple[int, str | None]] = [
    (201, None), (200, None), (409, "version_conflict_engine_exception"),
    (403, "cluster_block_exception"), (429, "cluster_block_exception"),
    (429, "es_rejected_execution_exception"), (429, "circuit_breaking_exception"),
    (500, "exception"), (503, "unavailable_shards_exception"),
    (NO_ANSWER, None), (403, "security_exception"),
    (400, "mapper_parsing_exception"), (400, "document_parsing_exception"), (404, "index_not_found_exception"),
]


def _actions(n: int) -> list[Action]:
    return [Action(f"id-{i}", "logs-a-default", orjson.dumps({"n": i}), Provenance(Meta("t", 0, i, 0), b"", "a"))
            for i in range(n)]


def _engine(kind: str, url: str) -> SearchEngine:
    if kind == "opensearch":
        return OpenSearchEngine(url, username=None, password=None, timeout=5, pool=2)
    return ElasticsearchEngine(url, username=None, password=None, api_key=None, timeout=5, pool=2)


async def _write(kind: str, script: Callable[[int, list[str]], Answer | str], n: int = 2
                 ) -> tuple[list[tuple[str, str, str]], list[list[str]]]:
    """(failures as (id, error type, reason), the ids of every request the engine received)."""
    with ImitationEngine(script) as imitation:
        engine = _engine(kind, imitation.url)
        try:
            # the retry bound is a time: one tick per request the engine received
            sink = BulkSink(engine, Stats(), max_bytes=1 << 20, concurrency=2, retry_initial_s=0.001,
                            retry_max_s=0.002, item_retry_s=MAX_RETRIES - 0.5,
                            clock=lambda: float(len(imitation.requests)))
            failures = await sink.write(_actions(n))
        finally:
            await engine.close()
        return [(f.action.doc_id, f.error_type, f.reason) for f in failures], imitation.requests


def _ok(ids: list[str]) -> Answer:
    return items(ids, lambda _: {"status": 201})


def _row(rows: tuple[statuses.Row, ...], status: int, error_type: str | None) -> statuses.Row:
    return next(row for row in rows if row.matches(status, error_type))


def test_every_row_has_a_case() -> None:
    covered = {_row(statuses.REQUEST_ROWS, s, None) for s, _ in REQUEST_CASES}
    assert covered == set(statuses.REQUEST_ROWS)
    covered = {_row(statuses.ITEM_ROWS, s, t) for s, t in ITEM_CASES}
    assert covered == set(statuses.ITEM_ROWS)


def test_the_docs_carry_the_table() -> None:
    assert statuses.markdown() in (REPO / "docs" / "ARCHITECTURE.md").read_text()


@pytest.mark.parametrize("kind", ["opensearch", "elasticsearch"])
@pytest.mark.parametrize(("status", "answer"), REQUEST_CASES, ids=[f"{s}-{i}" for i, (s, _) in
                                                                    enumerate(REQUEST_CASES)])
async def test_request_row(kind: str, status: int, answer: Answer | str) -> None:
    verdict = statuses.request_verdict(status)
    if verdict is Verdict.WAIT:  # once, then the engine is back: nothing lost, nothing failed
        failures, requests = await _write(kind, lambda n, ids: answer if n == 0 else _ok(ids))
        assert failures == [] and requests == [["id-0", "id-1"]] * 2
    elif verdict is Verdict.RETRY:  # for good: bounded, then dead-lettered as exhausted
        failures, requests = await _write(kind, lambda n, ids: answer)
        assert len(requests) == 1 + MAX_RETRIES
        assert [(i, t) for i, t, _ in failures] == [("id-0", EXHAUSTED), ("id-1", EXHAUSTED)]
        assert all(r.startswith("retries exhausted") and f"request_{status}" in r for _, _, r in failures)
    else:  # split: only the culprit fails
        assert verdict is Verdict.SPLIT
        failures, requests = await _write(kind, lambda n, ids: answer if "id-1" in ids else _ok(ids), n=4)
        assert [(i, t) for i, t, _ in failures] == [("id-1", f"request_{status}")]
        assert ["id-0"] in requests and ["id-2", "id-3"] in requests


@pytest.mark.parametrize("kind", ["opensearch", "elasticsearch"])
@pytest.mark.parametrize(("status", "error_type"), ITEM_CASES)
async def test_item_row(kind: str, status: int, error_type: str | None) -> None:
    verdict = statuses.item_verdict(status, error_type)
    result: dict[str, Any] = {} if status == NO_ANSWER else {"status": status}
    if error_type:
        result["error"] = _error(error_type)

    def answer_once(n: int, ids: list[str]) -> Answer:
        return items(ids, lambda i: result if i == "id-0" and n == 0 else {"status": 201})

    def answer_always(n: int, ids: list[str]) -> Answer:
        return items(ids, lambda i: result if i == "id-0" else {"status": 201})

    if verdict is Verdict.DONE:
        failures, requests = await _write(kind, answer_always)
        assert failures == [] and len(requests) == 1
    elif verdict is Verdict.WAIT:  # waited out however long it lasts (here: longer than the retry bound)
        failures, requests = await _write(kind, lambda n, ids: answer_always(n, ids) if n <= MAX_RETRIES + 2
                                          else _ok(ids))
        assert failures == [] and requests[1:] == [["id-0"]] * (MAX_RETRIES + 3)
    elif verdict is Verdict.RETRY:
        failures, requests = await _write(kind, answer_once)
        assert failures == [] and requests == [["id-0", "id-1"], ["id-0"]]
        failures, requests = await _write(kind, answer_always)
        assert requests == [["id-0", "id-1"]] + [["id-0"]] * MAX_RETRIES
        assert [(i, t) for i, t, _ in failures] == [("id-0", EXHAUSTED)]
        assert failures[0][2].startswith("retries exhausted")
    else:
        assert verdict is Verdict.FAIL
        failures, requests = await _write(kind, answer_always)
        assert [(i, t) for i, t, _ in failures] == [("id-0", error_type)] and len(requests) == 1
