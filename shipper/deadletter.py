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
from shipper.provenance import Origin

STREAM_TYPE = "logs"
# Larger originals are cut in the entry (the full record stays in its source topic at the
# offset the entry names); Kafka's default message limit is 1 MB and the entry must fit.
MAX_ORIGINAL_BYTES = 256 * 1024


@dataclass(slots=True)
class DeadLetter:
    meta: Origin
    raw: bytes | None
    error_type: str
    reason: str
    stage: str  # "decode" or "index"
    service: str | None = None


def _as_text(raw: bytes, truncated: bool) -> tuple[str, str | None]:
    """UTF-8 text when the bytes are UTF-8 (a cut may split the last character), else base64."""
    for trim in range(4 if truncated else 1):
        try:
            return raw[: len(raw) - trim].decode("utf-8"), None
        except UnicodeDecodeError:
            continue
    return base64.b64encode(raw).decode(), "base64"


def entry(dead: DeadLetter, namespace: str, now: datetime) -> dict[str, Any]:
    raw = dead.raw or b""
    truncated = len(raw) > MAX_ORIGINAL_BYTES
    original, encoding = _as_text(raw[:MAX_ORIGINAL_BYTES], truncated)
    doc: dict[str, Any] = {
        "@timestamp": format_ts(now),
        "message": f"{dead.error_type}: {dead.reason}"[:4000],
        "ecs": {"version": ECS_VERSION},
        "event": {"kind": "pipeline_error", "dataset": DATASET_DEAD_LETTER, "id": entry_id(dead)},
        "error": {"type": dead.error_type, "message": dead.reason[:8000]},
        "dead_letter": {
            "original": original,
            "topic": dead.meta.topic,
            "partition": dead.meta.partition,
            "offset": dead.meta.offset,
            "stage": dead.stage,
            "key": dead.meta.key.decode(errors="replace") if dead.meta.key else None,
        },
        "data_stream": {"type": STREAM_TYPE, "dataset": DATASET_DEAD_LETTER,
                        "namespace": sanitize_namespace(namespace)},
    }
    if encoding:
        doc["dead_letter"]["encoding"] = encoding
    if truncated:
        doc["dead_letter"]["truncated"] = True
        doc["dead_letter"]["original_bytes"] = len(dead.raw or b"")
    if dead.service:
        doc["service"] = {"name": dead.service}
    return doc


def entry_id(dead: DeadLetter) -> str:
    """Deterministic: the same rejected record dead-letters to the same id, however often it is redelivered."""
    return f"dl-{dead.meta.topic}-{dead.meta.partition}-{dead.meta.offset}"


def kafka_value(doc: dict[str, Any]) -> bytes:
    return orjson.dumps(doc)


def original_bytes(doc: dict[str, Any]) -> bytes:
    """The record as it was first produced, for replay."""
    letter = doc.get("dead_letter", {})
    original = letter.get("original", "")
    if letter.get("encoding") == "base64":
        return base64.b64decode(original)
    return str(original).encode()
