"""Bulk encoding and reading a bulk answer: pure (no I/O), so both are tested without an engine.

What an item's status means is the table in shipper/statuses.py (and docs/ARCHITECTURE.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import orjson

from shipper.ids import bounded_id
from shipper.provenance import Provenance
from shipper.statuses import NO_ANSWER, Verdict, item_verdict


@dataclass(slots=True)
class Action:
    doc_id: str
    stream: str
    source: bytes | memoryview  # the document, serialised once and reused on retries
    origin: Provenance | None = None  # a record from Kafka (None: a document the shipper made itself)
    # the whole bulk line pair (action, newline, source, newline) when the transform wrote it already
    line: bytes | memoryview | None = None


_source, _stream, _doc_id, _line = attrgetter("source"), attrgetter("stream"), attrgetter("doc_id"), attrgetter("line")


@dataclass(slots=True)
class Failure:
    action: Action
    error_type: str
    reason: str


def action_head(stream: str) -> bytes:
    """The action line up to the id's value: `{"create":{"_index":<stream>,"_id":`."""
    return b'{"create":{"_index":' + orjson.dumps(stream) + b',"_id":'


def bulk_body(actions: list[Action]) -> bytes:
    """The body for these actions: `<action>\\n<source>\\n` each (the transform's fast path wrote
    its records' pairs already, shipper/fast.py)."""
    lines = list(map(_line, actions))
    if None not in lines:  # all written by the fast path: one join, no Python step per action
        return b"".join(lines)
    parts: list[bytes | memoryview] = []
    append = parts.append
    dumps = orjson.dumps
    heads: dict[str, bytes] = {}  # a body's few streams: each one's action line prefix serialised once
    for action in actions:
        line = action.line
        if line is not None:
            append(line)
            continue
        stream = action.stream
        head = heads.get(stream)
        if head is None:
            head = heads[stream] = action_head(stream)
        append(head + dumps(bounded_id(action.doc_id)) + b"}}\n")
        append(action.source)
        append(b"\n")
    return b"".join(parts)


def chunks(actions: list[Action], max_bytes: int) -> list[list[Action]]:
    # the common case, a batch that fits in one request, summed without a Python step per action
    if (sum(map(len, map(_source, actions))) + sum(map(len, map(_stream, actions)))
            + sum(map(len, map(_doc_id, actions))) + 48 * len(actions)) <= max_bytes:
        return [list(actions)] if actions else []
    out: list[list[Action]] = []
    current: list[Action] = []
    size = 0
    for action in actions:
        cost = len(action.source) + len(action.stream) + len(action.doc_id) + 48
        if current and size + cost > max_bytes:
            out.append(current)
            current, size = [], 0
        current.append(action)
        size += cost
    if current:
        out.append(current)
    return out


@dataclass(slots=True)
class Classified:
    """One bulk answer read item by item (see shipper.statuses.ITEM_ROWS)."""

    done: list[Action] = field(default_factory=list)
    duplicates: list[Action] = field(default_factory=list)  # done, and already there
    wait: list[Action] = field(default_factory=list)
    retry: list[Failure] = field(default_factory=list)  # with the reason, for when the retries run out
    failed: list[Failure] = field(default_factory=list)
    overloaded: int = 0  # items answered 429 (in `wait`): the cluster sheds load


def _failure(action: Action, result: dict[str, Any], status: int) -> Failure:
    error = result.get("error") or {}
    if isinstance(error, dict):
        kind = str(error.get("type") or f"status_{status}")
        reason = str(error.get("reason", ""))
        cause = error.get("caused_by")
        if isinstance(cause, dict) and cause.get("reason"):
            reason = f"{reason}: {cause.get('reason')}"
    else:
        kind, reason = f"status_{status}", str(error)
    return Failure(action, kind, reason[:2000])


def classify(response: dict[str, Any], actions: list[Action]) -> Classified:
    items = response.get("items")
    if not isinstance(items, list) or len(items) != len(actions):
        # not one item per action (a proxy, a cut answer), whatever `errors` says: it proves
        # nothing about any action, so all are sent again
        return Classified(wait=list(actions))
    if response.get("errors") is False:  # the common case: no item to look at
        return Classified(done=actions)
    out = Classified()
    for action, item in zip(actions, items, strict=True):
        result = _result(item)
        status = result.get("status")
        status = status if isinstance(status, int) else NO_ANSWER
        error = result.get("error")
        error_type = error.get("type") if isinstance(error, dict) else None
        verdict = item_verdict(status, error_type if isinstance(error_type, str) else None)
        if verdict is Verdict.DONE:
            out.done.append(action)
            if status == 409:
                out.duplicates.append(action)
        elif verdict is Verdict.WAIT:
            out.wait.append(action)
            if status == 429:
                out.overloaded += 1
        elif verdict is Verdict.RETRY:
            out.retry.append(_failure(action, result, status))
        else:
            out.failed.append(_failure(action, result, status))
    return out


def _result(item: Any) -> dict[str, Any]:
    if not isinstance(item, dict) or not item:
        return {}
    result = item.get("create") or next(iter(item.values()))
    return result if isinstance(result, dict) else {}
