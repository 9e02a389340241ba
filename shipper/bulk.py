"""Bulk encoding and reading a bulk answer: pure (no I/O), so both are tested without an engine.

What an item's status means (see docs/ARCHITECTURE.md for the whole table):
- 201 created, or 409 on create (already indexed by an earlier delivery): done.
- 429, 5xx, status 0 or a write block (disk flood stage): to retry.
- any other 4xx (mapping or parse errors): a permanent failure, handed back to be dead-lettered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from shipper.ids import bounded_id
from shipper.provenance import Provenance


@dataclass(slots=True)
class Action:
    doc_id: str
    stream: str
    source: bytes | memoryview  # the document, serialised once and reused on retries
    origin: Provenance | None = None  # a record from Kafka (None: a document the shipper made itself)


@dataclass(slots=True)
class Failure:
    action: Action
    error_type: str
    reason: str


def bulk_body(actions: list[Action]) -> bytes:
    parts: list[bytes | memoryview] = []
    for action in actions:
        parts.append(b'{"create":{"_index":' + orjson.dumps(action.stream) + b',"_id":'
                     + orjson.dumps(bounded_id(action.doc_id))
                     + b"}}\n")
        parts.append(action.source)
        parts.append(b"\n")
    return b"".join(parts)


def chunks(actions: list[Action], max_bytes: int) -> list[list[Action]]:
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


def _blocked(result: dict[str, Any]) -> bool:
    """A write block (disk flood stage makes indices read-only): transient, like a 429, never a dead letter."""
    error = result.get("error")
    return isinstance(error, dict) and error.get("type") == "cluster_block_exception"


def classify(response: dict[str, Any], actions: list[Action]) -> tuple[list[Action], list[Action], list[Action],
                                                                      list[Failure]]:
    """(done, of which already there, to retry, permanent failures) from one bulk response."""
    if response.get("errors") is False:  # the common case: no item to look at
        return actions, [], [], []
    items = response.get("items") or []
    if len(items) != len(actions):
        return [], [], list(actions), []  # a truncated answer proves nothing: send them all again
    done: list[Action] = []
    duplicates: list[Action] = []
    retry: list[Action] = []
    failed: list[Failure] = []
    for action, item in zip(actions, items, strict=True):
        result: dict[str, Any] = item.get("create") or next(iter(item.values()), {})
        status = int(result.get("status", 0))
        if status in (200, 201):
            done.append(action)
        elif status == 409:
            done.append(action)
            duplicates.append(action)
        elif status == 429 or status >= 500 or status == 0 or _blocked(result):
            retry.append(action)
        else:
            error = result.get("error") or {}
            if isinstance(error, dict):
                kind = str(error.get("type", "unknown"))
                reason = str(error.get("reason", ""))
                cause = error.get("caused_by")
                if isinstance(cause, dict) and cause.get("reason"):
                    reason = f"{reason}: {cause.get('reason')}"
            else:
                kind, reason = "unknown", str(error)
            failed.append(Failure(action, kind, reason[:2000]))
    return done, duplicates, retry, failed
