"""Dead letters: records that can never be indexed as they are.

Each goes to the dead-letter Kafka topic (durable, replayable with `shipper replay`) AND to the
searchable dead-letter data stream, with the original record, the error type and the reason.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from collector.contract.ecs import ECS_VERSION
from collector.contract.streams import DATASET_DEAD_LETTER, sanitize_namespace
from collector.contract.timefmt import format_ts
from shipper.ids import coordinates_id
from shipper.provenance import Origin

STREAM_TYPE = "logs"
# Larger originals are cut in the entry (the full record stays in its source topic at the
# offset the entry names).
MAX_ORIGINAL_BYTES = 256 * 1024
# What one serialised entry may weigh when the broker's limit is not known (Kafka's default
# message.max.bytes is 1048588, less the record's envelope); see shipper.topics for the real one.
DEFAULT_MAX_ENTRY_BYTES = 1_000_000
MAX_KEY_BYTES = 1024  # a longer record key is cut in the entry and not reused as the entry's key
MIN_MAX_ENTRY_BYTES = 16384  # the cut summaries, the coordinates and the marker always fit in this


@dataclass(slots=True)
class DeadLetter:
    meta: Origin
    raw: bytes | None
    error_type: str
    reason: str
    stage: str  # "decode" or "index"
    service: str | None = None
    topic_id: str = ""  # the source topic's Kafka id (shipper/topic_ids.py), part of the entry's id


def _as_text(raw: bytes, truncated: bool) -> tuple[str, str | None]:
    """UTF-8 text when the bytes are UTF-8 (a cut may split the last character), else base64."""
    for trim in range(4 if truncated else 1):
        try:
            return raw[: len(raw) - trim].decode("utf-8"), None
        except UnicodeDecodeError:
            continue
    return base64.b64encode(raw).decode(), "base64"


def entry(dead: DeadLetter, namespace: str, now: datetime, max_bytes: int = DEFAULT_MAX_ENTRY_BYTES) -> dict[str, Any]:
    """The entry, cut so that `kafka_value` of it is at most max_bytes whatever the record holds
    (JSON escaping grows a control character sixfold: size is measured after serialisation)."""
    raw = dead.raw or b""
    truncated = len(raw) > MAX_ORIGINAL_BYTES
    original, encoding = _as_text(raw[:MAX_ORIGINAL_BYTES], truncated)
    key = dead.meta.key
    doc: dict[str, Any] = {
        "@timestamp": format_ts(now),
        "message": f"{dead.error_type}: {dead.reason}"[:4000],
        "ecs": {"version": ECS_VERSION},
        "event": {"kind": "pipeline_error", "dataset": DATASET_DEAD_LETTER, "id": entry_id(dead)},
        "error": {"type": dead.error_type[:256], "message": dead.reason[:8000]},
        "dead_letter": {
            "original": original,
            "topic": dead.meta.topic,
            "partition": dead.meta.partition,
            "offset": dead.meta.offset,
            "stage": dead.stage,
            "key": key[:MAX_KEY_BYTES].decode(errors="replace") if key else None,
        },
        "data_stream": {"type": STREAM_TYPE, "dataset": DATASET_DEAD_LETTER,
                        "namespace": sanitize_namespace(namespace)},
    }
    if encoding:
        doc["dead_letter"]["encoding"] = encoding
    if truncated:
        doc["dead_letter"]["truncated"] = True
        doc["dead_letter"]["original_bytes"] = len(raw)
    if dead.service:
        doc["service"] = {"name": dead.service[:256]}
    return _fit(doc, len(raw), max(max_bytes, MIN_MAX_ENTRY_BYTES))


def _size(doc: dict[str, Any]) -> int:
    return len(orjson.dumps(doc))


def _fit(doc: dict[str, Any], raw_bytes: int, max_bytes: int) -> dict[str, Any]:
    """Cuts the texts a record controls until the serialised entry fits, the original last and as
    little as possible; a cut entry says so (`truncated`, `original_bytes`)."""
    if _size(doc) <= max_bytes:
        return doc
    letter = doc["dead_letter"]
    letter["truncated"] = True
    letter["original_bytes"] = raw_bytes
    # the summary texts first, to a size no escaping can make large
    doc["message"] = doc["message"][:500]
    doc["error"]["message"] = doc["error"]["message"][:1000]
    if letter["key"] is not None:
        letter["key"] = letter["key"][:100]
    original: str = letter["original"]
    step = 4 if letter.get("encoding") == "base64" else 1  # base64 is cut in whole quanta
    # the longest prefix of the original that fits (entries this large are rare: a few dozen dumps)
    low, high = 0, len(original) // step
    while low < high:
        mid = (low + high + 1) // 2
        letter["original"] = original[: mid * step]
        if _size(doc) <= max_bytes:
            low = mid
        else:
            high = mid - 1
    letter["original"] = original[: low * step]
    return doc


def kafka_key(dead: DeadLetter) -> bytes | None:
    """The record's key, when it is small enough to travel beside the entry."""
    key = dead.meta.key
    return key if key is not None and len(key) <= MAX_KEY_BYTES else None


def entry_id(dead: DeadLetter) -> str:
    """Deterministic: the same rejected record dead-letters to the same id, however often it is redelivered."""
    return "dl-" + coordinates_id(dead.meta.topic, dead.meta.partition, dead.meta.offset, dead.topic_id)


def kafka_value(doc: dict[str, Any]) -> bytes:
    return orjson.dumps(doc)


def original_bytes(doc: dict[str, Any]) -> bytes:
    """The record as it was first produced, for replay."""
    letter = doc.get("dead_letter", {})
    original = letter.get("original", "")
    if letter.get("encoding") == "base64":
        return base64.b64decode(original)
    return str(original).encode()
