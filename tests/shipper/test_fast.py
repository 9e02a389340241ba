"""The transform's fast path (shipper/fast.py) gives the general path's documents, byte for byte.

On the shipper benchmark's corpus (the library's own records) and on library records with one
field made hostile at a time; tests/shipper/test_hostile.py runs its generated records through both
paths too. The corpus test also checks that the fast path is taken at all: none of its records may
fall back to a general step except the expansion of records the raw scan cannot read (a backslash).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.bench_shipper import generate
from collector.contract.streams import TOPIC_HEALTH, TOPIC_LOGS, TOPIC_METRICS
from shipper import fast
from shipper.bulk import bulk_body
from shipper.context import Batch, TransformSettings
from shipper.health.config import HealthSettings
from shipper.health.monitor import HealthMonitor
from shipper.native import NativeBatch
from shipper.provenance import Meta
from shipper.transform import Prepared, prepare

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
KAFKA_MS = int(NOW.timestamp() * 1000)
# the fast path in Python, and with its compiled part when that is built (shipper/native.py)
NATIVE = [False, True] if NativeBatch is not None else [False]
CORPUS = [Meta(TOPIC_LOGS, i % 4, i, KAFKA_MS, key, (), value) for i, (key, value) in enumerate(generate(3000))]


def _state(service: str) -> str | None:
    return {"api-service": "healthy", "auth-service": "degraded"}.get(service)


def _run(messages: list[Meta], fast_path: bool, native: bool = False, **overrides: Any) -> Prepared:
    monitor = HealthMonitor(HealthSettings(failures_to_down=1), "t")
    batch = Batch(TransformSettings(host_name="h", state_of=_state, **overrides), NOW)
    return prepare(messages, batch, monitor, fast=fast_path, native=native)


def _out(prepared: Prepared) -> tuple[list[tuple[str, str, bytes]], list[tuple[int, str, str]], bytes]:
    actions = [(a.doc_id, a.stream, bytes(a.source)) for a in prepared.actions]
    dead = [(d.meta.offset, d.error_type, d.reason) for d in prepared.dead]
    return actions, dead, bulk_body(prepared.actions)


def _same(messages: list[Meta], **overrides: Any) -> Prepared:
    """The fast path's output, checked against the general path's, with and without the compiled part."""
    general = _out(_run(messages, False, **overrides))
    for native in NATIVE:
        quick = _run(messages, True, native, **overrides)
        assert _out(quick) == general, f"native={native}"
    return quick


def test_the_benchmark_corpus_gives_the_same_documents_on_both_paths() -> None:
    prepared = _same(CORPUS)
    assert len(prepared.actions) >= len(CORPUS) and not prepared.dead


def test_the_fast_path_is_taken_for_the_library_records(monkeypatch: pytest.MonkeyPatch) -> None:
    fallbacks: dict[str, int] = {}
    for name in ("expand_keys", "normalize_timestamp", "normalize_level", "resolve_service", "stamp_ingest"):
        step = getattr(fast, name)

        def counted(record: Any, message: Any, batch: Any, step: Any = step, name: str = name) -> Any:
            fallbacks[name] = fallbacks.get(name, 0) + 1
            return step(record, message, batch)
        monkeypatch.setattr(fast, name, counted)
    _run(CORPUS, True, native=False)
    with_backslash = sum(1 for m in CORPUS if b"\\" in (m.value or b""))
    assert fallbacks == ({"expand_keys": with_backslash} if with_backslash else {})


def test_other_topics_headers_and_settings_give_the_same_documents() -> None:
    for topic in (TOPIC_METRICS, TOPIC_HEALTH):
        _same([m._replace(topic=topic) for m in CORPUS[:300]])
    _same([m._replace(headers=[("service", b"x-1"), ("host", b"h2")]) for m in CORPUS[:300]])
    _same(CORPUS[:300], namespace="Prod", service_map={"api-service": "api"})


def test_records_with_other_dotted_keys_come_out_the_same() -> None:
    base = orjson.loads(CORPUS[0].value or b"")
    variants = [{**base, f"extra{i}.x": i} for i in range(5)]
    variants += [{"ecs.version": "1", **{k: v for k, v in base.items() if k not in ("log", "ecs.version")}}]
    variants += [{k: v for k, v in base.items() if k != "log"}, {**base, "ecs": {"x": 1}}, {**base, "log": None}]
    _same([Meta(TOPIC_LOGS, 0, i, KAFKA_MS, None, (), orjson.dumps(v)) for i, v in enumerate(variants)])


LIBRARY = orjson.loads(CORPUS[1].value or b"")
# the fields the fast path looks at, each of which can be made uncommon
PLACES = [("@timestamp",), ("log.level",), ("ecs.version",), ("message",), ("log",), ("log", "level"),
          ("service",), ("service", "name"), ("service", "node"), ("event",), ("event", "provider"),
          ("event", "kind"), ("health",), ("agent",), ("ecs",), ("level",), ("msg",), ("labels", "a.b"),
          ("log.origin",), ("x.y.z",), (".x",), ("data_stream",), ("event", "id")]
hostile = (st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63)
           | st.text(max_size=12)
           | st.sampled_from(["INFO", "warn", "info", " error", "9999-12-31T23:59:59.000Z", "2026-12-06T11:00:00.000Z",
                              "\uff12\uff10\uff12\uff16-12-06T11:00:00.000Z", "elk-shipper", "metric", "api-1", ""])
           | st.dictionaries(st.sampled_from(["level", "name", "node", "x", "a.b"]), st.text(max_size=5), max_size=3)
           | st.lists(st.integers(min_value=-(2**63), max_value=2**63), max_size=2))
changes = st.lists(st.tuples(st.sampled_from(PLACES), hostile | st.just(...)), min_size=1, max_size=4)


def _changed(edits: list[tuple[tuple[str, ...], Any]]) -> bytes:
    record: dict[str, Any] = orjson.loads(orjson.dumps(LIBRARY))
    for path, value in edits:
        target: Any = record
        for part in path[:-1]:
            target = target.get(part) if type(target) is dict else None
        if type(target) is not dict:
            continue
        if value is ...:
            target.pop(path[-1], None)
        else:
            target[path[-1]] = value
    return orjson.dumps(record)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(changes, min_size=1, max_size=5), st.sampled_from([TOPIC_LOGS, TOPIC_METRICS, TOPIC_HEALTH]))
def test_library_records_with_hostile_fields_give_the_same_documents(edits: list[Any], topic: str) -> None:
    _same([Meta(topic, 0, i, KAFKA_MS, b"k", (), _changed(e)) for i, e in enumerate(edits)])


def _seen(messages: list[Meta], fast_path: bool, batches: int = 3, owned: tuple[int, ...] | None = None,
          **health: Any) -> Any:
    """What the health monitor holds after the records went through one path, in `batches` batches
    (the fast path: with and without its compiled part, which must agree); `owned`: the partitions
    of the logs topic (of 4) this replica holds (the others' services are counted to be sent on as
    shares)."""
    if fast_path:
        seen = [_seen_on(messages, True, native, batches, owned, **health) for native in NATIVE]
        assert all(s == seen[0] for s in seen)
        return seen[0]
    return _seen_on(messages, False, False, batches, owned, **health)


def _seen_on(messages: list[Meta], fast_path: bool, native: bool, batches: int, owned: tuple[int, ...] | None,
             **health: Any) -> Any:
    monitor = HealthMonitor(HealthSettings(**health), "t")
    if owned is not None:
        monitor.owner.assign([(TOPIC_LOGS, p) for p in owned], {TOPIC_LOGS: 4})
    batch = Batch(TransformSettings(host_name="h", state_of=monitor.state_of), datetime.now(UTC))
    size = -(-len(messages) // batches)
    for i in range(0, len(messages), size):
        prepare(messages[i:i + size], batch, monitor, fast=fast_path, native=native)
    signals = monitor.signals
    streams = {name: (s.max_ts, s.min_ts, s.errors, s.records) for name, s in signals.streams.items()}
    partial = {name: (s.max_ts, s.min_ts, s.errors, s.records) for name, s in signals.partial.items()}
    return (monitor.offsets, signals.freshest_ts, signals.refused, signals.dirty, streams, monitor.touched,
            partial, signals.counted, signals.partial_refused)


def test_the_health_monitor_sees_the_same_on_both_paths() -> None:
    """The fast path shows the monitor counts per batch (HealthMonitor.observe_counts): the same
    signals as one observe per record, redeliveries and services past the bound included."""
    corpus = [m._replace(partition=m.offset // 700) for m in CORPUS]  # runs of one partition, as Kafka hands them
    redelivered = corpus[:1500] + corpus[1000:]
    for messages in (CORPUS, corpus, redelivered):
        fast_seen = _seen(messages, True)
        assert fast_seen == _seen(messages, False)
        assert fast_seen[4] and all(errors for _, _, errors, _ in fast_seen[4].values())
    assert _seen(corpus, True, max_services=2) == _seen(corpus, False, max_services=2)
    assert _seen(corpus, True, max_services=2)[2] > 0
    # services whose stream another replica owns: counted apart, to be sent on (shipper/health/shares.py)
    for owned in ((0, 1), (2,), ()):
        elsewhere = _seen(corpus, True, owned=owned)
        assert elsewhere == _seen(corpus, False, owned=owned)
        assert elsewhere[6]
    assert _seen(corpus, True, owned=(), max_services=2) == _seen(corpus, False, owned=(), max_services=2)
    assert _seen(corpus, True, owned=(), max_services=2)[8] > 0
    # a bucket that is not a whole number of 10 s: grouped by the second
    assert _seen(corpus, True, error_window_s=45) == _seen(corpus, False, error_window_s=45)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(changes, min_size=1, max_size=8), st.sampled_from([TOPIC_LOGS, TOPIC_METRICS, TOPIC_HEALTH]))
def test_the_health_monitor_sees_the_same_of_hostile_records(edits: list[Any], topic: str) -> None:
    # every third on the health topic: probe results among the log records, observed as they come
    messages = [Meta(TOPIC_HEALTH if i % 3 == 2 else topic, i % 2, i, KAFKA_MS, b"k", (), _changed(e))
                for i, e in enumerate(edits)]
    assert _seen(messages, True, batches=2) == _seen(messages, False, batches=2)


def test_a_probe_result_in_the_batch_sees_the_counts_before_it() -> None:
    """A probe result is observed when it comes, so the log records before it are counted first:
    the removal of a service's last instance forgets its stream, and only the records after it
    start a new one, as with one observe per record."""
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    logs = [m._replace(partition=0, timestamp=now_ms) for m in CORPUS[:40]]
    service = orjson.loads(logs[-1].value or b"")["service"]["name"]  # one with records after the removal

    def probe(action: str, offset: int) -> Meta:
        record = {"@timestamp": orjson.loads(logs[0].value or b"")["@timestamp"],
                  "event": {"kind": "state", "dataset": "elk.health", "action": action},
                  "service": {"name": service, "node": {"name": f"{service}-1"}}, "health": {"status": "healthy"}}
        return Meta(TOPIC_HEALTH, 0, offset, now_ms, None, (), orjson.dumps(record))

    batch = [probe("health-check", 0), *logs[:20], probe("health-removed", 1), *logs[20:]]
    fast_seen = _seen(batch, True, batches=1)
    assert fast_seen == _seen(batch, False, batches=1)
    counted = sum(fast_seen[4][service][3].values())
    assert 0 < counted < sum(1 for m in logs if orjson.loads(m.value or b"")["service"]["name"] == service)
