"""Request and trace context in contextvars, so it follows the request into every asyncio task.

The context is stored as a ready-made ECS fragment (`trace`, `span`, `transaction`,
`http.request.id`) so the hot path merges it with one dict update.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any

_ECS: ContextVar[dict[str, Any] | None] = ContextVar("collector_ecs_context", default=None)
_FIELDS: ContextVar[dict[str, Any] | None] = ContextVar("collector_fields", default=None)

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")


@dataclass(frozen=True)
class TraceParent:
    version: str
    trace_id: str
    parent_id: str
    flags: str

    @property
    def sampled(self) -> bool:
        return bool(int(self.flags, 16) & 1)

    def header(self, span_id: str | None = None) -> str:
        return f"00-{self.trace_id}-{span_id or self.parent_id}-{self.flags}"


def parse_traceparent(value: str | None) -> TraceParent | None:
    """W3C Trace Context `traceparent`; None for anything invalid (the spec says: start a new trace)."""
    if not value:
        return None
    match = _TRACEPARENT.match(value.strip().lower())
    if match is None:
        return None
    version, trace_id, parent_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    if trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    return TraceParent(version, trace_id, parent_id, flags)


def new_trace_id() -> str:
    return os.urandom(16).hex()


def new_span_id() -> str:
    return os.urandom(8).hex()


def ecs_fragment(
    request_id: str | None = None, trace_id: str | None = None, span_id: str | None = None,
    transaction_id: str | None = None,
) -> dict[str, Any]:
    frag: dict[str, Any] = {}
    if trace_id:
        frag["trace"] = {"id": trace_id}
    if span_id:
        frag["span"] = {"id": span_id}
    if transaction_id:
        frag["transaction"] = {"id": transaction_id}
    if request_id:
        frag["http"] = {"request": {"id": request_id}}
    return frag


def bind_context(
    request_id: str | None = None, trace_id: str | None = None, span_id: str | None = None,
    transaction_id: str | None = None,
) -> Token[dict[str, Any] | None]:
    """Set the request/trace ids for the current context (and tasks created from it)."""
    return _ECS.set(ecs_fragment(request_id, trace_id, span_id, transaction_id) or None)


def reset_context(token: Token[dict[str, Any] | None]) -> None:
    _ECS.reset(token)


def current_context() -> dict[str, Any]:
    return dict(_ECS.get() or {})


@contextmanager
def request_context(
    request_id: str | None = None, traceparent: str | None = None
) -> Iterator[dict[str, str]]:
    """Context for one unit of work: trace from `traceparent` (or a new one), a new transaction id.

    Yields the ids, including `traceparent` for the outgoing/response header.
    """
    parent = parse_traceparent(traceparent)
    trace_id = parent.trace_id if parent else new_trace_id()
    transaction_id = new_span_id()
    flags = parent.flags if parent else "01"
    request_id = request_id or transaction_id
    token = bind_context(request_id, trace_id, transaction_id, transaction_id)
    try:
        yield {
            "request_id": request_id, "trace_id": trace_id, "transaction_id": transaction_id,
            "traceparent": f"00-{trace_id}-{transaction_id}-{flags}",
        }
    finally:
        _ECS.reset(token)


def bind_fields(**fields: Any) -> Token[dict[str, Any] | None]:
    """Caller fields added to every record in this context (they go to labels/extra like any field)."""
    return _FIELDS.set({**(_FIELDS.get() or {}), **fields})


def reset_fields(token: Token[dict[str, Any] | None]) -> None:
    _FIELDS.reset(token)


# bound methods, not wrappers: the hot path reads them on every record
get_ecs = _ECS.get
get_fields = _FIELDS.get
