"""Cutting a rendered record down to a destination's size limit, visibly.

A record over the limit would be refused for good (aiokafka raises MessageSizeTooLargeError for
anything over its `max_request_size` before it reaches the broker). Rather than lose it, its long
strings (message, stack trace, a blob in `extra`) are cut, each ending with `MARK`, and the
record says so in `labels.truncated_bytes` (its size before the cut) - the same idea as the
shipper's dead letters, which keep the first part of an original and flag it `truncated`.
A record that still does not fit (thousands of small fields) cannot be cut sensibly: None.
"""

from __future__ import annotations

from typing import Any

import orjson

MARK = "…[truncated]"
_SHORTEST = 256  # strings are never cut below this many characters


def _cut(value: Any, keep: int) -> Any:
    if type(value) is str:
        return value[:keep] + MARK if len(value) > keep else value
    if type(value) is dict:
        return {k: _cut(v, keep) for k, v in value.items()}
    if type(value) is list:
        return [_cut(v, keep) for v in value]
    return value


def fit(data: bytes, limit: int) -> bytes | None:
    """`data` itself when it fits; else a cut copy that fits; else None."""
    if len(data) <= limit:
        return data
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if type(doc) is not dict:
        return None
    keep = limit // 2
    while keep >= _SHORTEST:
        cut = _cut(doc, keep)
        labels = cut.get("labels")
        cut["labels"] = {**(labels if type(labels) is dict else {}), "truncated_bytes": len(data)}
        out = orjson.dumps(cut)
        if len(out) <= limit:
            return out
        keep //= 4
    return None
