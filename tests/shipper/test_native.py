"""The fast path's compiled part (native/, shipper/native.py): it takes a record only when the
record's bytes are orjson's canonical form, which it copies instead of decoding and encoding, and
the documents are those of the general path, byte for byte, whatever the values.

Skipped where the compiled part is not built (it is optional: the Python fast path does the same
work); `make venv` builds it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.bench_shipper import generate
from collector.contract.streams import TOPIC_HEALTH, TOPIC_LOGS
from shipper import fast
from shipper.bulk import bulk_body
from shipper.context import Batch, TransformSettings
from shipper.health.config import HealthSettings
from shipper.health.monitor import HealthMonitor
from shipper.native import NativeBatch
from shipper.provenance import Meta
from shipper.streamcap import StreamCap
from shipper.transform import Prepared, prepare

pytestmark = pytest.mark.skipif(NativeBatch is None, reason="the compiled part (native/) is not built")

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
KAFKA_MS = int(NOW.timestamp() * 1000)
LIBRARY = [orjson.loads(value) for _, value in generate(40)]


def _state(service: str) -> str | None:
    return {"api-service": "healthy", "auth-service": "degraded"}.get(service)


def _run(messages: list[Meta], fast_path: bool, native: bool) -> Prepared:
    monitor = HealthMonitor(HealthSettings(failures_to_down=1), "t")
    batch = Batch(TransformSettings(host_name="h", state_of=_state, streams=StreamCap(5000)), NOW)
    return prepare(messages, batch, monitor, fast=fast_path, native=native)


def _out(prepared: Prepared) -> Any:
    return ([(a.doc_id, a.stream, bytes(a.source)) for a in prepared.actions],
            [(d.meta.offset, d.error_type, d.reason) for d in prepared.dead], bulk_body(prepared.actions))


class Counting:
    """elk_native.Batch, counting the records it took and gave back."""

    taken = 0
    given_back = 0

    def __init__(self, *args: Any) -> None:
        self.inner = NativeBatch(*args)

    def __len__(self) -> int:
        return len(self.inner)

    def run(self, *args: Any) -> None:
        self.inner.run(*args)

    def states_changed(self) -> None:
        self.inner.states_changed()

    def transform(self, *args: Any) -> Any:
        hit = self.inner.transform(*args)
        if hit is None:
            Counting.given_back += 1
        else:
            Counting.taken += 1
        return hit


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> type[Counting]:
    Counting.taken = Counting.given_back = 0
    monkeypatch.setattr(fast, "NativeBatch", Counting)
    return Counting


def _same(values: list[bytes]) -> Prepared:
    """The values (each as a record of the logs topic) through the general path and through the fast
    path with its compiled part: the same documents, ids, bulk body and dead letters."""
    messages = [Meta(TOPIC_LOGS, 0, i, KAFKA_MS, b"k", (), v) for i, v in enumerate(values)]
    native = _run(messages, True, True)
    assert _out(native) == _out(_run(messages, False, False))
    return native


def _warm(values: list[bytes]) -> list[bytes]:
    """A record of each library service first: the Python path routes it, after which the batch
    knows the stream and the compiled part can take that service's records."""
    return [orjson.dumps(r) for r in LIBRARY] + values


def test_the_library_records_are_taken_but_the_first_of_each_stream(counting: type[Counting]) -> None:
    values = [value for _, value in generate(2000)]
    _same(values)
    services = {orjson.loads(v)["service"]["name"] for v in values}
    assert counting.given_back == len(services)  # routed once by the Python path
    assert counting.taken == len(values) - len(services)


json_values = st.recursive(
    st.none() | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["labels", "extra", "error", "url", "user"]), json_values),
                min_size=1, max_size=4))
def test_any_canonical_value_is_copied_as_orjson_writes_it(fields: list[tuple[str, Any]]) -> None:
    """Every JSON value orjson writes (floats of every magnitude, every character, integers to the
    64-bit edges): in a library record, the compiled part takes it (unless a key has a dot, which
    expand_keys decides) and the document is the general path's."""
    Counting.taken = Counting.given_back = 0
    records = []
    for i, (key, value) in enumerate(fields):
        record = dict(LIBRARY[i % len(LIBRARY)])
        record[key] = value
        records.append(orjson.dumps(record))
    original, fast.NativeBatch = fast.NativeBatch, Counting
    try:
        _same(_warm(records))
    finally:
        fast.NativeBatch = original
    # given back: a dotted key (expand_keys decides), a float orjson writes with an exponent
    refused = sum(1 for _, value in fields if "." in json.dumps(_keys(value)) or any(
        b"e" in orjson.dumps(f) for f in _floats(value)))
    services = len({r["service"]["name"] for r in LIBRARY})
    assert Counting.taken == len(LIBRARY) - services + len(records) - refused


def _floats(value: Any) -> list[float]:
    if isinstance(value, float):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    return [f for v in value for f in _floats(v)] if isinstance(value, list) else []


def _keys(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [*value, *(k for v in value.values() for k in _keys(v))]
    if isinstance(value, list):
        return [k for v in value for k in _keys(v)]
    return []


# bytes that read as the same values but are not what orjson writes: the general path's document
# differs from them, so the compiled part must give each back
NOT_CANONICAL = [
    b'{"a": 1}', b'{"a":1.50}', b'{"a":1e3}', b'{"a":1E3}', b'{"a":-0}', b'{"a":1.0e-7}', b'{"a":0.000001}',
    b'{"a":10000000000000000.0}', b'{"a":18446744073709551616}', b'{"a":-9223372036854775809}',
    b'{"a":"\\u00e9"}', b'{"a":"\\/"}', b'{"a":"\\u000A"}', b'{"a":"\\u000a"}', b'{"a":"\\u001F"}',
    b'{"a":"\\ud83d\\ude00"}', b'{"a":1,"a":2}', b'{"a":{"b":1,"b":1}}', b'{"a":[1, 2]}', b'{"a":"\xff"}',
    b'{"a":"\xc3"}', b'{"a":"\t"}', b'{"a":.5}', b'{"a":01}', b'{"a":1.}', b'{"a":tru}', b'{"a":1}x', b'{"a":1} ',
    b'{"a":[1,]}', b'{"a":{"b":1,}}', b'{"a":"x', b'{"a":{"b.c":1}}', b'{"a":[{"b.c":1}]}',
]


def _with(raw_field: bytes) -> bytes:
    """A library record with the raw member `"a":...` spliced in, bytes as they are."""
    base = orjson.dumps(LIBRARY[1])
    member = raw_field[1:-1] if raw_field.endswith(b"}") else raw_field[1:]
    return base[:-1] + b"," + member + (b"}" if raw_field.endswith(b"}") else b"")


def test_bytes_orjson_would_not_write_take_the_python_path(counting: type[Counting]) -> None:
    values = [_with(raw) for raw in NOT_CANONICAL]
    _same(_warm(values))
    assert counting.taken == len(LIBRARY) - len({r["service"]["name"] for r in LIBRARY})


def test_nesting_and_keys_past_the_bounds_take_the_python_path(counting: type[Counting]) -> None:
    deep: Any = 1
    for _ in range(70):
        deep = {"d": deep}
    wide = {f"k{i}": i for i in range(200)}
    values = [orjson.dumps({**LIBRARY[1], "deep": deep}), orjson.dumps({**LIBRARY[1], "wide": wide}),
              orjson.dumps({**LIBRARY[1], "list": [[[[1]]]] * 3})]
    _same(_warm(values))
    services = len({r["service"]["name"] for r in LIBRARY})
    assert counting.taken == len(LIBRARY) - services + 1  # the list: within the bounds


def test_the_streams_it_knows_are_bounded_by_the_batch(counting: type[Counting]) -> None:
    """One entry per (topic, service, metric kind) the Python path routed in the batch: a batch of
    3,000 services makes 3,000, and the next batch starts empty."""
    values = []
    for i in range(3000):
        record = dict(LIBRARY[i % len(LIBRARY)])
        record["service"] = {**record["service"], "name": f"svc-{i}"}
        values += [orjson.dumps(record)] * 2
    made: list[Counting] = []
    original_init = Counting.__init__

    def remember(self: Counting, *args: Any) -> None:
        original_init(self, *args)
        made.append(self)
    Counting.__init__ = remember  # type: ignore[method-assign]
    try:
        _same(values)
        _same(values[:2])
    finally:
        Counting.__init__ = original_init  # type: ignore[method-assign]
    assert [len(m) for m in made] == [3000, 1]
    assert counting.taken == 3000 + 1


def _monitor_run(messages: list[Meta], native: bool, fast_path: bool = True) -> Prepared:
    monitor = HealthMonitor(HealthSettings(failures_to_down=1), "t")
    batch = Batch(TransformSettings(host_name="h", state_of=monitor.state_of), NOW)
    return prepare(messages, batch, monitor, fast=fast_path, native=native)


def test_a_probe_result_in_the_batch_changes_the_state_it_stamps() -> None:
    """A probe result observed mid-batch changes the service's health state: the records after it
    carry the new state on every path (the compiled part asks the states again)."""
    logs = [orjson.dumps(r) for r in LIBRARY]
    service = LIBRARY[0]["service"]["name"]

    def probe(status: str, offset: int) -> Meta:
        record = {"@timestamp": LIBRARY[0]["@timestamp"],
                  "event": {"kind": "state", "dataset": "elk.health", "action": "health-check"},
                  "service": {"name": service, "node": {"name": f"{service}-1"}}, "health": {"status": status}}
        return Meta(TOPIC_HEALTH, 0, offset, KAFKA_MS, None, (), orjson.dumps(record))

    messages = ([probe("healthy", 0)] + [Meta(TOPIC_LOGS, 0, i, KAFKA_MS, b"k", (), v) for i, v in enumerate(logs)]
                + [probe("unhealthy", 1)] + [Meta(TOPIC_LOGS, 0, 100 + i, KAFKA_MS, b"k", (), v)
                                             for i, v in enumerate(logs)])
    native = _out(_monitor_run(messages, True))
    assert native == _out(_monitor_run(messages, False)) == _out(_monitor_run(messages, False, fast_path=False))
    states = [orjson.loads(doc).get("health", {}).get("state") for _, _, doc in native[0]
              if orjson.loads(doc)["service"]["name"] == service and orjson.loads(doc)["event"].get("kind") != "state"]
    assert states[0] != states[-1] and None not in states


def test_a_state_of_that_fails_gives_the_python_paths_dead_letters() -> None:
    def failing(service: str) -> str | None:
        raise RuntimeError(f"no state for {service}")
    messages = [Meta(TOPIC_LOGS, 0, i, KAFKA_MS, b"k", (), orjson.dumps(r)) for i, r in enumerate(LIBRARY)]
    outs = []
    for fast_path, native in ((True, True), (True, False), (False, False)):
        batch = Batch(TransformSettings(host_name="h", state_of=failing), NOW)
        outs.append(_out(prepare(messages, batch, HealthMonitor(HealthSettings(), "t"), fast=fast_path, native=native)))
    assert outs[0] == outs[1] == outs[2]
    assert len(outs[0][1]) == len(LIBRARY) and "no state for" in outs[0][1][0][2]
