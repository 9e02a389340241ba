"""Stage 2: bytes from Kafka -> a JSON object, or the reason it cannot be one.

Anything that is not a UTF-8 JSON object within the size limit becomes a dead letter; the
pipeline never stops on it.
"""

from __future__ import annotations

from typing import Any

import orjson


class Rejected(Exception):
    """A record that can never be indexed as it is. `kind` is the dead letter's error.type."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def decode(value: bytes | None, max_bytes: int) -> dict[str, Any]:
    if value is None:
        raise Rejected("empty", "the Kafka message has no value (tombstone)")
    if len(value) > max_bytes:
        raise Rejected("too_large", f"record is {len(value)} bytes, over the limit of {max_bytes}")
    try:
        record = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            raise Rejected("not_utf8", "record is not valid UTF-8") from None
        raise Rejected("decode", f"invalid JSON: {exc}") from None
    if not isinstance(record, dict):
        raise Rejected("not_object", f"record is a JSON {type(record).__name__}, not an object")
    return record
