"""`shipper run` against the real broker and OpenSearch: everything produced is indexed or
dead-lettered exactly once, by id, and offsets are committed only after that."""

from __future__ import annotations

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from tests.shipper.harness import Run, create_topic, ids_in, log_record, produce, stop, wait_count

pytestmark = pytest.mark.stack


async def _dead_topic_values(run: Run, want: int) -> list[dict]:
    consumer = AIOKafkaConsumer(run.dead_topic, bootstrap_servers=run.bootstrap, auto_offset_reset="earliest",
                                group_id=None, enable_auto_commit=False)
    await consumer.start()
    out: list[dict] = []
    try:
        for _ in range(40):
            batches = await consumer.getmany(timeout_ms=500)
            out += [orjson.loads(m.value) for ms in batches.values() for m in ms]
            if len(out) >= want:
                break
    finally:
        await consumer.stop()
    return out


async def test_logs_are_indexed_once_and_poison_is_dead_lettered(run: Run) -> None:
    await create_topic(run.bootstrap, run.logs_topic, partitions=3)
    good = [log_record(n, service="api-service" if n % 2 else "auth-service") for n in range(300)]
    poison = [b"{not json", b"[1,2,3]", b"\xff\xfe\x00garbage", b'"just a string"']
    await produce(run.bootstrap, run.logs_topic, good + poison)

    shipper = run.start_shipper()
    try:
        got = await wait_count(run.search_url, f"logs-*-{run.namespace}", 300 + 4)
    finally:
        assert stop(shipper) == 0
    logs = await ids_in(run.search_url, f"logs-api_service-{run.namespace},logs-auth_service-{run.namespace}")
    dead = await ids_in(run.search_url, f"logs-elk.deadletter-{run.namespace}")
    assert got == 304
    assert sorted(logs) == sorted(f"rec-{n}" for n in range(300))
    assert len(dead) == len(set(dead)) == 4
    letters = await _dead_topic_values(run, 4)
    assert sorted(d["error"]["type"] for d in letters) == ["decode", "not_object", "not_object", "not_utf8"]
    assert {d["dead_letter"]["topic"] for d in letters} == {run.logs_topic}

    # a second shipper in the same group finds everything committed: nothing is re-indexed
    again = run.start_shipper("second")
    try:
        await wait_count(run.search_url, f"logs-*-{run.namespace}", 10**9, within=5)
    finally:
        assert stop(again) == 0
    assert len(await ids_in(run.search_url, f"logs-*-{run.namespace}")) == 304


async def test_mapping_conflict_is_dead_lettered_with_reason(run: Run) -> None:
    await create_topic(run.bootstrap, run.logs_topic)
    # an object first, then a plain value under the same name: no mapping can hold both
    first = [log_record(n, custom={"an": "object"}) for n in range(5)]
    clash = [log_record(100 + n, custom="now a string") for n in range(3)]
    await produce(run.bootstrap, run.logs_topic, first)
    shipper = run.start_shipper()
    try:
        await wait_count(run.search_url, f"logs-api_service-{run.namespace}", 5)
        await produce(run.bootstrap, run.logs_topic, clash)
        await wait_count(run.search_url, f"logs-elk.deadletter-{run.namespace}", 3)
    finally:
        assert stop(shipper) == 0
    assert len(await ids_in(run.search_url, f"logs-api_service-{run.namespace}")) == 5
    letters = await _dead_topic_values(run, 3)
    assert len(letters) == 3
    assert all(d["dead_letter"]["stage"] == "index" for d in letters)
    assert all("mapper" in d["error"]["type"] or "parse" in d["error"]["type"] for d in letters)
    assert sorted(orjson.loads(d["dead_letter"]["original"])["event"]["id"] for d in letters) == \
        ["rec-100", "rec-101", "rec-102"]
