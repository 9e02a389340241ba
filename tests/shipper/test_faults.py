"""Fault tests against the real broker and engine. Each asserts exact counts: every produced
record is in the index or the dead-letter stream exactly once, by id."""

from __future__ import annotations

import asyncio
import signal

import orjson
import pytest

from shipper.templates import TOTAL_FIELDS_LIMIT
from stack.localstack import Config, down, up
from tests.shipper.harness import Run, count, create_topic, ids_in, log_record, produce, stop, wait_count

pytestmark = [pytest.mark.stack, pytest.mark.slow]


def _expected(n: int) -> list[str]:
    return sorted(f"rec-{i}" for i in range(n))


async def _assert_exactly(run: Run, n: int, dead: int = 0) -> None:
    ids = await ids_in(run.search_url, f"logs-api_service-{run.namespace}")
    assert len(ids) == len(set(ids)), "duplicates in the index"
    assert sorted(ids) == _expected(n)
    dead_ids = await ids_in(run.search_url, f"logs-elk.deadletter-{run.namespace}")
    assert len(dead_ids) == len(set(dead_ids)) == dead


async def test_sigkill_mid_stream_and_restart(run: Run) -> None:
    n = 30_000
    await create_topic(run.bootstrap, run.logs_topic, partitions=3)
    await produce(run.bootstrap, run.logs_topic, (log_record(i) for i in range(n)))
    kills = 0
    for round_ in range(4):
        shipper = run.start_shipper(f"shipper-{round_}", SHIPPER_BATCH_MAX_RECORDS="2000")
        await asyncio.sleep(2.5 + round_ * 0.7)
        if shipper.poll() is None:
            shipper.send_signal(signal.SIGKILL)
            shipper.wait()
            kills += 1
    assert kills == 4
    partial = await count(run.search_url, f"logs-api_service-{run.namespace}")
    final = run.start_shipper("final")
    try:
        assert await wait_count(run.search_url, f"logs-api_service-{run.namespace}", n, within=120) == n
    finally:
        assert stop(final) == 0
    assert 0 < partial <= n
    await _assert_exactly(run, n)


async def test_engine_down_for_a_minute(run: Run, stack_config: Config) -> None:
    n = 4_000
    await create_topic(run.bootstrap, run.logs_topic, partitions=2)
    await produce(run.bootstrap, run.logs_topic, (log_record(i) for i in range(n // 2)))
    shipper = run.start_shipper(SHIPPER_RETRY_MAX_S="2")
    try:
        assert await wait_count(run.search_url, f"logs-api_service-{run.namespace}", n // 2) == n // 2
        await asyncio.to_thread(down, stack_config, ("opensearch",))
        try:
            await produce(run.bootstrap, run.logs_topic, (log_record(i) for i in range(n // 2, n)))
            await asyncio.sleep(60)
            assert shipper.poll() is None, "the shipper must wait for the engine, not exit"
        finally:
            await asyncio.to_thread(up, stack_config, ("opensearch",))
        assert await wait_count(run.search_url, f"logs-api_service-{run.namespace}", n, within=120) == n
    finally:
        assert stop(shipper) == 0
    await _assert_exactly(run, n)


async def test_broker_restart(run: Run, stack_config: Config) -> None:
    n = 6_000
    await create_topic(run.bootstrap, run.logs_topic, partitions=2)
    await produce(run.bootstrap, run.logs_topic, (log_record(i) for i in range(n // 2)))
    shipper = run.start_shipper()
    try:
        assert await wait_count(run.search_url, f"logs-api_service-{run.namespace}", n // 2) == n // 2
        await asyncio.to_thread(down, stack_config, ("kafka",))
        try:
            await asyncio.sleep(3)
        finally:
            await asyncio.to_thread(up, stack_config, ("kafka",))
        await produce(run.bootstrap, run.logs_topic, (log_record(i) for i in range(n // 2, n)))
        assert await wait_count(run.search_url, f"logs-api_service-{run.namespace}", n, within=120) == n
    finally:
        assert stop(shipper) == 0
    await _assert_exactly(run, n)


async def test_two_shippers_one_killed(run: Run) -> None:
    n = 20_000
    await create_topic(run.bootstrap, run.logs_topic, partitions=4)
    first = run.start_shipper("a", SHIPPER_BATCH_MAX_RECORDS="1000")
    second = run.start_shipper("b", SHIPPER_BATCH_MAX_RECORDS="1000")
    try:
        await asyncio.sleep(4)  # both join the group and share the four partitions
        await produce(run.bootstrap, run.logs_topic, (log_record(i) for i in range(n)))
        await asyncio.sleep(1.0)
        second.send_signal(signal.SIGKILL)
        second.wait()
        assert await wait_count(run.search_url, f"logs-api_service-{run.namespace}", n, within=120) == n
    finally:
        assert stop(first) == 0
    await _assert_exactly(run, n)


async def test_poison_records_of_every_kind(run: Run) -> None:
    await create_topic(run.bootstrap, run.logs_topic)
    good = [log_record(i) for i in range(50)]
    indexed_oddities = [
        log_record(50, **{"@timestamp": "yesterday-ish"}),  # unparseable: kept in labels, Kafka time used
        log_record(51, **{"@timestamp": "2999-01-01T00:00:00Z"}),  # far future: same
        orjson.dumps({"a": "leaf", "a.b": 1, "message": "leaf and object", "service": {"name": "api-service"},
                      "event": {"id": "rec-52"}}),
        log_record(53, conflict={"starts": "as object"}),
    ]
    dead = [
        b"{\"unterminated\": ",
        b"[{\"a\": 1}]",
        b"\xc3\x28 not utf-8",
        orjson.dumps({"message": "x" * (5 * 1024 * 1024), "service": {"name": "api-service"}}),
        log_record(54, conflict="then a string"),
        orjson.dumps({"service": {"name": "api-service"}, "event": {"id": "rec-55"},
                      **{f"field_{i}": i for i in range(TOTAL_FIELDS_LIMIT + 100)}}),  # over the mapping limit
    ]
    await produce(run.bootstrap, run.logs_topic, good + indexed_oddities[:-1])
    await produce(run.bootstrap, run.logs_topic, [indexed_oddities[-1]])
    shipper = run.start_shipper()
    try:
        await wait_count(run.search_url, f"logs-api_service-{run.namespace}", 54)
        await produce(run.bootstrap, run.logs_topic, dead)
        assert await wait_count(run.search_url, f"logs-elk.deadletter-{run.namespace}", len(dead)) == len(dead)
        await asyncio.sleep(1)
        assert shipper.poll() is None
    finally:
        assert stop(shipper) == 0
    ids = await ids_in(run.search_url, f"logs-api_service-{run.namespace}")
    assert sorted(ids) == _expected(54)
    dead_ids = await ids_in(run.search_url, f"logs-elk.deadletter-{run.namespace}")
    assert len(dead_ids) == len(set(dead_ids)) == len(dead)
