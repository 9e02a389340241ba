"""Issue 20 items 1 and 2 on the real broker and engine: the shipper behind a loopback proxy that
answers like an overloaded Elasticsearch (per-item 429 `es_rejected_execution_exception` inside a
200 bulk answer, for longer than any count of retries would wait, then passing through). Overload
is backpressure: every record is indexed exactly once and nothing is dead-lettered for it; only
records that can never be indexed are, and produced == indexed + dead-lettered."""

from __future__ import annotations

import asyncio

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from tests.shipper.harness import (
    Run,
    create_topic,
    free_port,
    ids_in,
    log_record,
    produce,
    sources_in,
    stop,
    wait_count,
)
from tests.shipper.imitation import OverloadProxy

pytestmark = pytest.mark.stack

REJECTIONS = 25  # per record; the old bound was 15 retries


async def _messages_in(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        part = TopicPartition(topic, 0)  # the shipper creates its dead-letter topic with one partition
        ends, starts = await consumer.end_offsets([part]), await consumer.beginning_offsets([part])
        return int(ends[part] - starts[part])
    finally:
        await consumer.stop()


async def _overloaded(port: int) -> None:
    """Returns once /health says "engine_overloaded" (the caller bounds it)."""
    async with httpx.AsyncClient() as client:
        while True:
            try:
                if (await client.get(f"http://127.0.0.1:{port}/health")).json().get("engine_overloaded"):
                    return
            except (httpx.HTTPError, ValueError):
                pass
            await asyncio.sleep(0.05)


async def test_an_overloaded_cluster_is_waited_out_not_dead_lettered(run: Run) -> None:
    n = 1000
    await create_topic(run.bootstrap, run.logs_topic, partitions=2)
    good = [log_record(i) for i in range(n)]
    # two records whose `http` disagrees: the one sending text where the ECS template maps an object
    # can never be indexed (a field left to dynamic mapping would not do: the templates' ignore_malformed
    # lets an object into a keyword field mapped first from a string, so the outcome would hang on order)
    poison = [log_record(n, http={"version": "1.1"}), log_record(n + 1, http="not an object")]
    produced = await produce(run.bootstrap, run.logs_topic, [*good, *poison])
    port = free_port()
    with OverloadProxy(run.search_url, rejections=REJECTIONS) as proxy:
        shipper = run.start_shipper(SHIPPER_SEARCH_URL=proxy.url, SHIPPER_HTTP_PORT=str(port),
                                    SHIPPER_RETRY_INITIAL_S="0.01", SHIPPER_RETRY_MAX_S="0.05",
                                    SHIPPER_BATCH_MAX_RECORDS="300")
        try:
            said = asyncio.create_task(_overloaded(port))
            index = f"logs-api_service-{run.namespace}"
            got = await wait_count(run.search_url, index, n + 1, within=180)
            dead_letters = await wait_count(run.search_url, f"logs-elk.deadletter-{run.namespace}", 1, within=30)
            said_so = said.done()
            said.cancel()
        finally:
            assert stop(shipper) == 0
    assert (got, dead_letters) == (n + 1, 1)
    assert said_so, "/health must say the engine is overloaded while it sheds load"
    assert proxy.rejected >= (n + 2) * REJECTIONS
    indexed = await ids_in(run.search_url, f"logs-api_service-{run.namespace}")
    assert len(indexed) == len(set(indexed)) == n + 1, "duplicates in the index"
    dead = await sources_in(run.search_url, f"logs-elk.deadletter-{run.namespace}", ["error.type", "dead_letter"])
    # the mapping conflict, never the overload
    assert [d["error"]["type"] for d in dead] == ["mapper_parsing_exception"]
    [loser] = [orjson.loads(m)["event"]["id"] for m in poison if orjson.loads(m)["event"]["id"] not in indexed]
    assert loser == f"rec-{n + 1}"
    assert orjson.loads(dead[0]["dead_letter"]["original"])["event"]["id"] == loser
    assert sorted(indexed) == sorted({f"rec-{i}" for i in range(n + 2)} - {loser})
    assert produced == len(indexed) + len(dead)
    assert await _messages_in(run.bootstrap, run.dead_topic) == 1  # the overload itself: no dead letter
