"""Redelivery, replay and the ops endpoint, with the real shipper, broker and OpenSearch."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from tests.shipper.harness import (
    Run,
    create_topic,
    free_port,
    ids_in,
    log_record,
    ops_metrics,
    produce,
    stop,
    wait_count,
)

pytestmark = pytest.mark.stack


async def _topic_values(bootstrap: str, topic: str, want: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None,
                                enable_auto_commit=False)
    await consumer.start()
    out: list[bytes] = []
    try:
        for _ in range(40):
            batches = await consumer.getmany(timeout_ms=250)
            out += [m.value for ms in batches.values() for m in ms if m.value is not None]
            if len(out) >= want:
                break
    finally:
        await consumer.stop()
    return out


async def test_redelivery_to_a_new_group_does_not_duplicate(run: Run) -> None:
    await create_topic(run.bootstrap, run.logs_topic, partitions=2)
    # no event.id: the _id comes from topic/partition/offset, the same on every delivery
    values = [orjson.dumps({"message": f"m{n}", "service": {"name": "api-service"}}) for n in range(500)]
    await produce(run.bootstrap, run.logs_topic, values)
    first = run.start_shipper("first")
    try:
        assert await wait_count(run.search_url, f"logs-api_service-{run.namespace}", 500) == 500
    finally:
        assert stop(first) == 0
    port = free_port()
    again = run.start_shipper("again", SHIPPER_GROUP_ID=f"other-{run.unique}", SHIPPER_HTTP_PORT=str(port))
    try:
        for _ in range(120):
            await asyncio.sleep(0.25)
            try:
                seen = await ops_metrics(port)
            except httpx.HTTPError:
                continue
            if seen.get("shipper_duplicates_total", 0) >= 500:
                break
    finally:
        assert stop(again) == 0
    assert seen["shipper_consumed_total"] == 500
    assert seen["shipper_duplicates_total"] == 500
    ids = await ids_in(run.search_url, f"logs-api_service-{run.namespace}")
    assert len(ids) == len(set(ids)) == 500


async def test_health_and_metrics_endpoints(run: Run) -> None:
    await create_topic(run.bootstrap, run.logs_topic, partitions=2)
    await produce(run.bootstrap, run.logs_topic, [log_record(n) for n in range(20)] + [b"nope"])
    port = free_port()
    # gzip on: the same counts prove OpenSearch took compressed bulk bodies
    shipper = run.start_shipper(SHIPPER_HTTP_PORT=str(port), SHIPPER_STATS_INTERVAL_S="1", SHIPPER_GZIP="true")
    try:
        await wait_count(run.search_url, f"logs-*-{run.namespace}", 21)
        assert await wait_count(run.search_url, f"metrics-elk.pipeline-{run.namespace}", 1, within=10) >= 1
        for _ in range(40):  # lag is sampled once a second
            metrics = await ops_metrics(port)
            if metrics.get(f'shipper_consumer_lag{{topic="{run.logs_topic}",partition="0"}}') == 0:
                break
            await asyncio.sleep(0.25)
        async with httpx.AsyncClient() as client:
            health = await client.get(f"http://127.0.0.1:{port}/health")
            missing = await client.get(f"http://127.0.0.1:{port}/nothing")
    finally:
        assert stop(shipper) == 0
    assert health.status_code == 200 and health.json()["status"] == "healthy"
    assert health.json()["engine"] == "opensearch"
    assert missing.status_code == 404
    assert metrics["shipper_up"] == 1
    assert metrics["shipper_consumed_total"] == 21
    assert metrics["shipper_indexed_total"] == 20
    assert metrics["shipper_dead_lettered_total"] == 1
    assert metrics["shipper_bulk_seconds_count"] >= 1
    assert metrics[f'shipper_consumer_lag{{topic="{run.logs_topic}",partition="1"}}'] == 0
    # its own logs: one ECS JSON object per line, library logs included
    lines = [orjson.loads(line) for line in (run.logdir / "shipper.log").read_bytes().splitlines()]
    assert all({"@timestamp", "log.level", "message", "ecs.version"} <= line.keys() for line in lines)


async def test_replay_sends_dead_letters_back_filtered_by_type(run: Run) -> None:
    await create_topic(run.bootstrap, run.logs_topic)
    poison = [b"{broken", b"[1]", b"[2]"]
    await produce(run.bootstrap, run.logs_topic, poison, key=b"api-service")
    shipper = run.start_shipper()
    try:
        assert await wait_count(run.search_url, f"logs-elk.deadletter-{run.namespace}", 3) == 3
    finally:
        assert stop(shipper) == 0
    replay = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "shipper.cli", "replay", "--error-type", "not_object", env=run.env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(replay.communicate(), 60)
    assert replay.returncode == 0, out
    assert b"replayed 2 dead letters, skipped 1" in out
    values = await _topic_values(run.bootstrap, run.logs_topic, 5)
    assert values == [*poison, b"[1]", b"[2]"]


def _stopped_consumed(log: Path) -> int:
    lines = [orjson.loads(line) for line in log.read_bytes().splitlines() if line.startswith(b"{")]
    # the shipper logs through the collector library: scalar fields are under `labels`
    return sum(int(line["labels"]["consumed"]) for line in lines if line.get("message") == "stopped")


async def test_scale_out_rebalance_hands_over_without_loss_or_double_counting(run: Run) -> None:
    n = 120_000
    await create_topic(run.bootstrap, run.logs_topic, partitions=4)
    await produce(run.bootstrap, run.logs_topic, (log_record(i) for i in range(n)))
    # small batches, and slow enough that the second shipper joins while there is work left
    small = {"SHIPPER_BATCH_MAX_RECORDS": "500", "SHIPPER_MAX_BATCHES_IN_FLIGHT": "2", "SHIPPER_BULK_CONCURRENCY": "1"}
    first = run.start_shipper("first", **small)
    await asyncio.sleep(0.5)
    second = run.start_shipper("second", **small)  # joins mid-stream: partitions are revoked and reassigned
    try:
        assert await wait_count(run.search_url, f"logs-api_service-{run.namespace}", n, within=90) == n
    finally:
        assert stop(first) == 0
        assert stop(second) == 0
    ids = await ids_in(run.search_url, f"logs-api_service-{run.namespace}")
    assert sorted(ids) == sorted(f"rec-{i}" for i in range(n))
    consumed = (_stopped_consumed(run.logdir / "first.log"), _stopped_consumed(run.logdir / "second.log"))
    assert consumed[0] > 0 and consumed[1] > 0, consumed
    assert sum(consumed) == n  # what was finished before the handover was committed, and only that
