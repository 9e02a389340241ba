"""What the shipper does with every answer of the engine: one table for a bulk request as a
whole, one for each item of a bulk answer. The first matching row wins. The same rows are
rendered into docs/ARCHITECTURE.md (a test keeps the two equal). Pure: no I/O.

Verdicts:
- done: indexed, or already there (a redelivery).
- wait: the engine cannot take anything now (down, overloaded, disk full); retried with backoff
  for as long as it takes. Nothing new is fetched meanwhile (Kafka is the buffer: lag grows), so
  memory stays bounded; an overload is backpressure, never a reason to dead-letter.
- retry: retried with backoff for up to SHIPPER_ITEM_RETRY_S seconds from the first such answer
  (a time, not a count: how long an outage lasts does not depend on how fast we ask), then
  dead-lettered with error.type `retries_exhausted`: one deterministic failure never stalls a
  partition forever, and the dead letter can be replayed once the cause is fixed.
- split: the request was refused for its content: halves are sent until the culprit is alone,
  which is then a permanent failure; its neighbours are indexed.
- fail: permanent; dead-lettered at once with the engine's reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class Verdict(StrEnum):
    DONE = "done"
    WAIT = "wait"
    RETRY = "retry"
    SPLIT = "split"
    FAIL = "fail"


# pseudo-statuses for answers that carry none
NO_ANSWER = 0  # connection refused or reset, timeout; for an item: no status in its result
NOT_BULK = -1  # a 2xx whose body is not JSON or not a bulk answer (a proxy's page, a cut body)


@dataclass(frozen=True, slots=True)
class Row:
    answer: str  # as the docs say it
    verdict: Verdict
    why: str
    matches: Callable[[int, str | None], bool]  # (status, error.type) -> does this row apply


REQUEST_ROWS: tuple[Row, ...] = (
    Row("no answer (connection refused or reset, timeout)", Verdict.WAIT,
        "the engine or the network is down", lambda s, t: s == NO_ANSWER),
    Row("2xx that is not a bulk answer (not JSON, or not one item per action: a proxy)", Verdict.WAIT,
        "proves nothing about the items", lambda s, t: s == NOT_BULK),
    Row("408, 429", Verdict.WAIT, "timed out or overloaded as a whole", lambda s, t: s in (408, 429)),
    Row("5xx", Verdict.WAIT, "the engine or a proxy in front of it fails", lambda s, t: s >= 500),
    Row("401", Verdict.WAIT, "the credentials fail for every request until the user or key is restored "
        "on the engine", lambda s, t: s == 401),
    Row("403", Verdict.RETRY, "a missing privilege, possibly on some indices only: bounded in time like an item 403",
        lambda s, t: s == 403),
    Row("any other 4xx (400 unreadable, 413 too large, ...)", Verdict.SPLIT,
        "one record makes the request unacceptable", lambda s, t: 400 <= s < 500),
)

ITEM_ROWS: tuple[Row, ...] = (
    Row("200, 201", Verdict.DONE, "indexed", lambda s, t: s in (200, 201)),
    Row("409 (the `_id` is there: a redelivery)", Verdict.DONE, "create is idempotent by id",
        lambda s, t: s == 409),
    Row("error.type `cluster_block_exception` (any status: disk flood stage, read-only index)", Verdict.WAIT,
        "the whole cluster refuses writes until an operator frees space", lambda s, t: t == "cluster_block_exception"),
    Row("429 (`es_rejected_execution_exception`, `circuit_breaking_exception`: overloaded)", Verdict.WAIT,
        "backpressure: the cluster sheds load and takes the item once it catches up", lambda s, t: s == 429),
    Row("5xx, no status", Verdict.RETRY, "transient on one shard, unless it never clears",
        lambda s, t: s == NO_ANSWER or s >= 500),
    Row("403", Verdict.RETRY, "a missing privilege on this index: replayable once granted",
        lambda s, t: s == 403),
    Row("any other status (mapping or parse errors, 400 ...)", Verdict.FAIL,
        "the record itself cannot be indexed", lambda s, t: True),
)


def _first(rows: tuple[Row, ...], status: int, error_type: str | None, default: Verdict) -> Verdict:
    for row in rows:
        if row.matches(status, error_type):
            return row.verdict
    return default


def request_verdict(status: int) -> Verdict:
    """For a bulk request as a whole: its HTTP status, NO_ANSWER or NOT_BULK."""
    return _first(REQUEST_ROWS, status, None, Verdict.WAIT)


def item_verdict(status: int, error_type: str | None = None) -> Verdict:
    return _first(ITEM_ROWS, status, error_type, Verdict.FAIL)


def markdown() -> str:
    """Both tables as they appear in docs/ARCHITECTURE.md."""
    out: list[str] = []
    for title, rows in (("Bulk request (as a whole)", REQUEST_ROWS), ("Bulk item", ITEM_ROWS)):
        out += [f"| {title} | Verdict | Why |", "|---|---|---|"]
        out += [f"| {row.answer} | {row.verdict} | {row.why} |" for row in rows]
        out.append("")
    return "\n".join(out)
