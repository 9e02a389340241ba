"""The pure transform of a batch (decode -> enrich -> route) and the dead-letter entry shape."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from shipper import deadletter
from shipper.context import Batch, TransformSettings
from shipper.deadletter import DeadLetter
from shipper.ids import record_id
from shipper.monitor import NullMonitor
from shipper.provenance import Meta
from shipper.transform import prepare

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@dataclass
class Msg:
    value: bytes | None
    offset: int
    topic: str = "elk-logs"
    partition: int = 0
    timestamp: int = 1_764_331_200_000
    key: bytes | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)


class EchoMonitor(NullMonitor):
    def observe(self, record: dict[str, Any], origin: Any = None) -> list[tuple[str, dict[str, Any]]]:
        doc = {"message": "seen", "data_stream": {"type": "logs", "dataset": "elk.health", "namespace": "default"}}
        return [(f"seen-{record['event']['id']}", doc)] if record["event"].get("id") else []


def test_prepare_splits_good_records_from_poison() -> None:
    messages = [
        Msg(orjson.dumps({"message": "ok", "service": {"name": "api"}, "event": {"id": "e1"}}), 0),
        Msg(b"[1]", 1),
        Msg(b"\xff", 2),
        Msg(orjson.dumps({"message": "big" * 6000}), 3),
        Msg(b'{"a":' * 2000 + b"1" + b"}" * 2000, 4),  # nested deeper than any engine accepts
    ]
    prepared = prepare(messages, Batch(TransformSettings(host_name="h", max_record_bytes=16384), NOW), EchoMonitor())
    actions, dead = prepared.actions, prepared.dead
    assert [(a.doc_id, a.stream) for a in actions] == [
        (record_id({"event": {"id": "e1"}}, messages[0]), "logs-api-default"), ("seen-e1", "logs-elk.health-default")]
    assert orjson.loads(actions[0].source)["data_stream"]["dataset"] == "api"
    assert [(d.meta.offset, d.error_type, d.stage) for d in dead] == [
        (1, "not_object", "decode"), (2, "not_utf8", "decode"), (3, "too_large", "decode"), (4, "decode", "decode")]


def _letter(raw: bytes, **kw: Any) -> DeadLetter:
    return DeadLetter(Meta("elk-logs", 1, 42, 0, b"api-service"), raw, "mapper_parsing_exception", "bad", "index", **kw)


def test_dead_letter_entry_shape_and_replayable_original() -> None:
    raw = orjson.dumps({"message": "m"})
    doc = deadletter.entry(_letter(raw, service="api-service"), "prod", NOW)
    assert doc["event"]["kind"] == "pipeline_error"
    assert doc["error"] == {"type": "mapper_parsing_exception", "message": "bad"}
    assert doc["dead_letter"] | {} == {"original": raw.decode(), "topic": "elk-logs", "partition": 1, "offset": 42,
                                       "stage": "index", "key": "api-service"}
    assert doc["data_stream"] == {"type": "logs", "dataset": "elk.deadletter", "namespace": "prod"}
    assert doc["service"] == {"name": "api-service"}
    assert deadletter.original_bytes(doc) == raw
    assert deadletter.entry_id(_letter(raw)) == deadletter.entry_id(_letter(b"other"))  # by position


def test_dead_letter_of_binary_and_huge_records() -> None:
    binary = deadletter.entry(_letter(b"\xff\x00"), "default", NOW)
    assert binary["dead_letter"]["encoding"] == "base64"
    assert base64.b64decode(binary["dead_letter"]["original"]) == b"\xff\x00"
    huge = deadletter.entry(_letter(b"x" * (5 * 1024 * 1024)), "default", NOW)
    assert huge["dead_letter"]["truncated"] is True
    assert len(deadletter.kafka_value(huge)) < 1_000_000  # fits the broker's default message limit


def test_a_redelivered_probe_result_writes_its_transitions_under_the_same_ids() -> None:
    from datetime import timedelta

    from collector.contract.streams import TOPIC_HEALTH
    from shipper.health import build_monitor
    from shipper.health.config import HealthSettings

    probe = {"@timestamp": "2026-11-28T11:59:59.000Z", "event": {"dataset": "elk.health", "action": "health-check"},
             "service": {"name": "api-service", "node": {"name": "api-service-1"}}, "health": {"status": "unhealthy"}}
    message = Msg(orjson.dumps(probe), 17, topic=TOPIC_HEALTH, partition=2)
    deliveries = []
    for later in (0, 7):  # the first delivery's batch was never committed: the same message, seconds later
        monitor = build_monitor(HealthSettings(failures_to_down=1))
        batch = Batch(TransformSettings(host_name="h", state_of=monitor.state_of), NOW + timedelta(seconds=later))
        prepared = prepare([message], batch, monitor)
        deliveries.append(sorted(a.doc_id for a in prepared.actions if a.origin is None))
    assert deliveries[0], "the unhealthy probe result makes transitions"
    assert deliveries[0] == deliveries[1]


def test_a_long_event_original_passes_the_transform_whole() -> None:
    # the engine side (no doc values for event.original) is the templates'; the shipper must not refuse it
    original = "\u00e9" * 20_000  # 40,000 bytes: over Lucene's 32,766-byte term limit
    message = Msg(orjson.dumps({"message": "m", "event": {"original": original}}), 0)
    prepared = prepare([message], Batch(TransformSettings(host_name="h"), NOW), NullMonitor())
    assert not prepared.dead
    assert orjson.loads(prepared.actions[0].source)["event"]["original"] == original


def test_ids_carry_the_topic_id() -> None:
    """Issue 20 item 8, pure: the same coordinates in another topic of the same name (recreated,
    mirrored) are another document; a redelivery of the same record is the same one."""
    from shipper.deadletter import DeadLetter, entry_id
    from shipper.ids import record_id
    from shipper.provenance import Meta
    from shipper.topic_ids import encode_id

    old, new = encode_id(bytes(range(16))), encode_id(bytes(range(1, 17)))
    assert len(old) == 22 and old != new
    message = Meta("elk-logs", 3, 42, 0, value=b'{"message": "m"}')
    assert record_id({}, message, old) == record_id({}, message, old) == f"elk-logs-3-42-{old}"
    assert record_id({}, message, old) != record_id({}, message, new)
    assert record_id({}, message) == "elk-logs-3-42"  # a broker without topic ids
    letters = [DeadLetter(message, b"x", "decode", "r", "decode", topic_id=tid) for tid in (old, new)]
    assert [entry_id(d) for d in letters] == [f"dl-elk-logs-3-42-{old}", f"dl-elk-logs-3-42-{new}"]
