"""No record, header or combination of them raises out of the transform (issue 12, item 1).

`prepare` runs decode -> enrich -> route and the real health monitor's `observe` per record, on
the fast path and on the general one, which must give the same documents (shipper/fast.py); every
message must come out exactly once, as a bulk action or as a dead letter with a reason, whatever
JSON values, keys and headers it holds. Hypothesis generates the records; the cases that stopped
the shipper before are explicit examples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from collector.contract.streams import TOPIC_HEALTH, TOPIC_LOGS, TOPIC_METRICS, is_own_dataset, is_own_written
from shipper.context import Batch, TransformSettings
from shipper.health import build_monitor
from shipper.health.config import HealthSettings
from shipper.ids import MAX_ID_BYTES
from shipper.native import NativeBatch
from shipper.transform import prepare

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
KAFKA_MS = int(NOW.timestamp() * 1000)

# the names the steps and the monitor look at, flat and dotted, so generated records hit them often
FIELDS = ["@timestamp", "log", "log.level", "level", "message", "msg", "event", "event.id", "event.dataset",
          "event.action", "event.kind", "event.provider", "service", "service.name", "service.node",
          "service.node.name", "health", "health.status", "data_stream", "data_stream.dataset", "labels",
          "host", "host.name", "container", "container.name", "ecs", "ecs.version", "agent", ".", "a..b", "x."]
HEADERS = ["service", "service.name", "host", "host.name", "environment", "service.environment", "SERVICE"]

scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30)
           | st.sampled_from(["WARN", "Err", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00",
                              "2026-11-28T12:00:00.000Z", "health-check", "healthy", "elk.health", "elk-shipper",
                              "api_service_1", "", " "]))
keys = st.sampled_from(FIELDS) | st.text(max_size=12)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
                      max_leaves=25)
records = st.dictionaries(keys, values, max_size=10)
headers = st.lists(st.tuples(st.sampled_from(HEADERS) | st.text(max_size=8),
                             st.none() | st.binary(max_size=12) | st.sampled_from([b"api-1", b"\xff"])), max_size=4)
topics = st.sampled_from([TOPIC_LOGS, TOPIC_METRICS, TOPIC_HEALTH])


@dataclass
class Msg:
    value: bytes | None
    offset: int
    topic: str = TOPIC_LOGS
    partition: int = 0
    timestamp: int = KAFKA_MS
    key: bytes | None = None
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)


def _prepare(messages: list[Msg], fast: bool, native: bool = False) -> Any:
    monitor = build_monitor(HealthSettings(failures_to_down=1))
    batch = Batch(TransformSettings(host_name="h", state_of=monitor.state_of, max_record_bytes=64 * 1024), NOW)
    return prepare(messages, batch, monitor, fast=fast, native=native)


def _documents(prepared: Any) -> Any:
    return ([(a.doc_id, a.stream, bytes(a.source)) for a in prepared.actions],
            [(d.meta.offset, d.error_type, d.reason) for d in prepared.dead])


def _check(messages: list[Msg]) -> Any:
    """Both paths (shipper/fast.py), the fast one with and without its compiled part: the same
    documents and dead letters, and each keeps the rules."""
    prepared = _check_path(messages, fast=True)
    general = _documents(_check_path(messages, fast=False))
    assert _documents(prepared) == general
    if NativeBatch is not None:
        assert _documents(_check_path(messages, fast=True, native=True)) == general
    return prepared


def _check_path(messages: list[Msg], fast: bool, native: bool = False) -> Any:
    prepared = _prepare(messages, fast, native)
    from_kafka = [a for a in prepared.actions if a.origin is not None]
    # each message exactly once: indexed or dead-lettered
    seen = sorted([a.origin.origin.offset for a in from_kafka] + [d.meta.offset for d in prepared.dead])
    assert seen == sorted(m.offset for m in messages)
    for dead in prepared.dead:
        assert dead.reason and dead.error_type
    for action in prepared.actions:
        doc = orjson.loads(action.source)
        assert len(action.stream.encode()) <= 255 and len(action.doc_id.encode()) <= MAX_ID_BYTES
        assert doc["data_stream"]["dataset"] == action.stream.split("-")[1]
        if action.origin is not None:
            assert doc["@timestamp"] and doc["service"]["name"]
            # only probe results from a health topic reach an own stream, and never the shipper's marker
            assert not is_own_dataset(doc["data_stream"]["dataset"]) or action.origin.origin.topic == TOPIC_HEALTH
            assert not is_own_written(doc) and type(doc["event"].get("provider")) in (str, type(None))
            level = (doc.get("log") or {}).get("level") if isinstance(doc.get("log"), dict) else None
            assert level is None or isinstance(level, str)
    return prepared


EXAMPLES: list[tuple[dict[str, Any], str, list[tuple[str, bytes | None]]]] = [
    ({"log": {"level": {"name": "error"}}, "message": "m"}, TOPIC_LOGS, []),
    ({"log.level": ["error", "warn"], "message": "m"}, TOPIC_LOGS, []),
    ({"level": {"x": 1}}, TOPIC_LOGS, []),
    ({"@timestamp": "0001-01-01T00:00:00+01:00", "message": "m"}, TOPIC_LOGS, []),
    ({"event": {"dataset": "elk.health", "action": "health-check"}, "service": {"name": "a", "node": "a-1"},
      "health": {"status": "unhealthy"}}, TOPIC_HEALTH, []),
    ({"event": {"dataset": "elk.health", "action": "health-check"}, "service": {"name": "a"},
      "health": "unhealthy"}, TOPIC_HEALTH, []),
    ({"message": "m"}, TOPIC_LOGS, [("host", None), ("service", None), ("environment", None)]),
    ({"message": "m", "data_stream": {"dataset": "elk.alerts"}, "event": {"provider": "elk-shipper"}}, TOPIC_LOGS, []),
    # issue 20 item 10: the marker in an array (a term query matches it) or an object
    ({"event": {"action": "health-transition", "provider": ["elk-shipper"]}, "service": {"name": "a"},
      "health": {"scope": "service", "to": "unhealthy"}}, TOPIC_HEALTH, []),
    ({"event.provider": {"name": "elk-shipper"}, "message": "m"}, TOPIC_LOGS, []),
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(records, topics, headers, st.none() | st.binary(max_size=10)), min_size=1, max_size=8))
def test_any_batch_comes_out_whole(batch: list[tuple[dict[str, Any], str, list[Any], bytes | None]]) -> None:
    messages = []
    for offset, (record, topic, hdrs, key) in enumerate(batch):
        try:
            value = orjson.dumps(record)
        except TypeError:  # hypothesis made something JSON cannot carry (an integer beyond 64 bit)
            value = b'{"n": 18446744073709551616}'
        messages.append(Msg(value, offset, topic, key=key, headers=hdrs))
    _check(messages)


@given(st.lists(st.tuples(records, topics, headers), min_size=1, max_size=4))
@example([(record, topic, hdrs) for record, topic, hdrs in EXAMPLES])
@settings(max_examples=50, deadline=None)
def test_the_records_that_stopped_the_shipper(batch: list[tuple[dict[str, Any], str, list[Any]]]) -> None:
    _check([Msg(orjson.dumps(record), offset, topic, headers=hdrs)
            for offset, (record, topic, hdrs) in enumerate(batch)])


@pytest.mark.parametrize(("record", "topic", "hdrs"), EXAMPLES)
def test_each_named_case_is_indexed_not_dead_lettered(record: dict[str, Any], topic: str,
                                                      hdrs: list[tuple[str, bytes | None]]) -> None:
    prepared = _check([Msg(orjson.dumps(record), 0, topic, headers=hdrs)])
    assert not prepared.dead
    assert len([a for a in prepared.actions if a.origin is not None]) == 1


def test_raw_bytes_that_are_no_record() -> None:
    values = [None, b"", b"\xff\xfe", b"[1]", b"null", b'"text"', b'{"a":' * 3000 + b"1" + b"}" * 3000,
              b'{"a": NaN}', b"x" * 70000]
    prepared = _check([Msg(v, i) for i, v in enumerate(values)])
    assert not [a for a in prepared.actions if a.origin is not None]
