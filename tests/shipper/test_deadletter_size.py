"""Issue 12 item 5, pure part: every dead-letter entry fits the message limit whatever the record
holds, measured after JSON escaping; a cut entry is marked and keeps as much as fits."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import orjson
import pytest

from shipper import deadletter
from shipper.deadletter import DeadLetter
from shipper.provenance import Meta

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
CONTROL = bytes(range(1, 32)).replace(b"\n", b"")  # each becomes \\uXXXX (6 bytes) once escaped


def _letter(raw: bytes, key: bytes | None = b"api-service", reason: str = "bad") -> DeadLetter:
    return DeadLetter(Meta("elk-logs", 0, 7, 0, key), raw, "mapper_parsing_exception", reason, "index")


def _control(size: int) -> bytes:
    return (CONTROL * (size // len(CONTROL) + 1))[:size]


@pytest.mark.parametrize("limit", [deadletter.DEFAULT_MAX_ENTRY_BYTES, 100_000, deadletter.MIN_MAX_ENTRY_BYTES])
@pytest.mark.parametrize("raw", [
    _control(200_000),  # 1.2 MB once escaped: the case from the issue
    b'"' * 300_000,  # quotes double
    "é\u2028".encode() * 100_000,  # multi-byte characters
    b"\xff\x00" * 150_000,  # not UTF-8: base64
    b"x" * (5 * 1024 * 1024),  # beyond MAX_ORIGINAL_BYTES
])
def test_every_entry_fits_the_limit(raw: bytes, limit: int) -> None:
    letter = _letter(raw, reason=_control(8000).decode())
    doc = deadletter.entry(letter, "default", NOW, limit)
    value = deadletter.kafka_value(doc)
    assert len(value) <= limit
    whole = deadletter.entry(letter, "default", NOW, 10**9)
    if len(deadletter.kafka_value(whole)) <= limit:
        assert doc == whole
        return
    # cut, marked, and as much kept as fits: one more character of the original would not
    cut = doc["dead_letter"]
    assert cut["truncated"] is True and cut["original_bytes"] == len(raw)
    if cut.get("encoding") == "base64":
        assert len(cut["original"]) % 4 == 0
        assert raw.startswith(base64.b64decode(cut["original"]))
    else:
        assert raw.decode(errors="ignore").startswith(cut["original"])
    assert len(value) > limit - 16


def test_an_entry_that_fits_is_left_whole() -> None:
    raw = _control(10_000)
    doc = deadletter.entry(_letter(raw), "default", NOW)
    assert "truncated" not in doc["dead_letter"]
    assert deadletter.original_bytes(doc) == raw


def test_a_huge_key_is_cut_in_the_entry_and_not_reused() -> None:
    letter = _letter(b"{}", key=_control(500_000))
    doc = deadletter.entry(letter, "default", NOW, 100_000)
    assert len(orjson.dumps(doc)) <= 100_000
    assert deadletter.kafka_key(letter) is None
    assert deadletter.kafka_key(_letter(b"{}")) == b"api-service"
