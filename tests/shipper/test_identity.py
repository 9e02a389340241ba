"""Document identity and where records may go, on the real broker and engine (issue 12 items 3, 4, 9).

- distinct records never collapse into one document, an identical record sent twice does;
- ids and index names stay within the engines' byte limits whatever the characters;
- a record cannot land in the product's own streams, and health state is restored only from
  documents the shipper wrote itself.
"""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from opensearchpy import AsyncOpenSearch

from collector.contract.streams import is_own_written
from tests.shipper.harness import Run, count, create_topic, free_port, ids_in, ops_metrics, produce, stop, wait_count

pytestmark = pytest.mark.stack

TS = "2026-11-28T12:00:00.000Z"


def _record(message: str, event_id: str | None = None, service: str = "api-service", **fields: object) -> bytes:
    event = {"id": event_id} if event_id is not None else {}
    return orjson.dumps({"@timestamp": TS, "message": message, "service": {"name": service}, "event": event,
                         **fields})


async def _sources(run: Run, index: str) -> list[dict]:
    client = AsyncOpenSearch(hosts=[run.search_url])
    try:
        await client.indices.refresh(index=index, ignore_unavailable=True)
        found = await client.search(index=index, body={"size": 1000, "query": {"match_all": {}}},
                                    params={"ignore_unavailable": "true"})
        return [hit["_source"] for hit in found["hits"]["hits"]]
    finally:
        await client.close()


async def test_distinct_records_never_collapse_and_a_resent_one_does(run: Run) -> None:
    await create_topic(run.bootstrap, run.logs_topic, partitions=2)
    shared = [_record(f"line {n} of request 7", "req-7") for n in range(4)]  # one request id, four lines
    resent = _record("paid", "pay-1")  # a client's retry: the same bytes three times
    anonymous = _record("tick")  # no event.id: two identical lines are two records
    emoji_id = _record("long id", "\U0001f600" * 200)  # 800 bytes: over the engines' 512-byte _id limit
    await produce(run.bootstrap, run.logs_topic, [*shared, resent, resent, resent, anonymous, anonymous, emoji_id])
    produced = 10
    shipper = run.start_shipper()
    try:
        # settle: the number stops moving once everything (and nothing twice) is in
        await wait_count(run.search_url, f"logs-api_service-{run.namespace}", 8)
        await asyncio.sleep(2)
    finally:
        assert stop(shipper) == 0
    ids = await ids_in(run.search_url, f"logs-api_service-{run.namespace}")
    assert await count(run.search_url, f"logs-elk.deadletter-{run.namespace}") == 0
    assert sorted(i for i in ids if i in ("req-7", "pay-1")) == ["pay-1", *["req-7"] * 4]
    assert len(ids) == 4 + 1 + 2 + 1 == produced - 2  # only the two resends collapsed


async def test_long_multibyte_names_stay_within_the_byte_limits(run: Run) -> None:
    await create_topic(run.bootstrap, run.logs_topic)
    service = "\u00fc" * 300  # 600 bytes of service name: the dataset is cut at 100 bytes
    await produce(run.bootstrap, run.logs_topic, [_record("m", "\u00fc" * 300, service=service)])
    shipper = run.start_shipper()
    try:
        got = await wait_count(run.search_url, f"logs-*-{run.namespace}", 1, within=30)
    finally:
        assert stop(shipper) == 0
    assert got == 1
    [doc] = await _sources(run, f"logs-*-{run.namespace}")
    stream = doc["data_stream"]
    assert stream["dataset"] == "\u00fc" * 50
    assert len(f"logs-{stream['dataset']}-{stream['namespace']}".encode()) <= 255 - len(".ds--2026.11.28-000001")


async def test_records_cannot_forge_the_products_streams_or_its_restored_state(run: Run) -> None:
    health_topic = run.health_topic
    await create_topic(run.bootstrap, run.logs_topic)
    await create_topic(run.bootstrap, health_topic)
    forged_transition = {"event": {"dataset": "elk.health", "action": "health-transition", "kind": "state",
                                   "provider": "elk-shipper"},
                         "health": {"scope": "service", "from": "healthy", "to": "unhealthy"}}
    await produce(run.bootstrap, run.logs_topic, [
        _record("a", service="victim", **forged_transition),
        _record("b", data_stream={"type": "logs", "dataset": "elk.alerts", "namespace": run.namespace},
                **{"event.kind": "alert", "alert": {"id": "x", "state": "open"}}),
        _record("c", data_stream={"type": "metrics", "dataset": "elk.pipeline"}),
        _record("d", service="elk.deadletter"),
    ])
    # on a health topic a record does reach the health stream, but without the shipper's marker
    # issue 20 item 10: the marker in an array, which the restore's term query also matches
    in_array = {**forged_transition, "event": {**forged_transition["event"], "provider": ["elk-shipper"]}}
    await produce(run.bootstrap, health_topic, [_record("e", service="victim", **forged_transition),
                                                _record("f", service="victim", **in_array)])
    env = {"SHIPPER_TOPICS": f"{run.logs_topic},{health_topic}"}
    shipper = run.start_shipper(**env)
    try:
        got = await wait_count(run.search_url, f"logs-*-{run.namespace},metrics-*-{run.namespace}", 6)
    finally:
        assert stop(shipper) == 0
    # the records, whatever the monitor wrote itself meanwhile (a transition of `victim`)
    records = [d for d in await _sources(run, f"logs-*-{run.namespace},metrics-*-{run.namespace}")
               if not is_own_written(d)]
    assert got >= 6 and sorted(d["message"] for d in records) == ["a", "b", "c", "d", "e", "f"]
    assert await count(run.search_url, f"logs-elk.alerts-{run.namespace}") == 0
    assert await count(run.search_url, f"logs-elk.deadletter-{run.namespace}") == 0
    assert await count(run.search_url, f"metrics-elk.pipeline-{run.namespace}") == 0
    on_health = sorted((d for d in await _sources(run, f"logs-elk.health-{run.namespace}") if not is_own_written(d)),
                       key=lambda d: d["message"])
    assert [d["message"] for d in on_health] == ["e", "f"]
    assert all("provider" not in d["event"] for d in on_health)
    assert await count(run.search_url, f"logs-elk_deadletter-{run.namespace}") == 1
    assert await count(run.search_url, f"logs-victim-{run.namespace}") == 1

    # a fresh shipper restores health state from the index: the forged transitions are no state
    port = free_port()
    again = run.start_shipper("again", SHIPPER_HTTP_PORT=str(port), SHIPPER_GROUP_ID=f"again-{run.unique}", **env)
    try:
        metrics: dict[str, float] = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not metrics.get("shipper_up"):
            await asyncio.sleep(0.3)
            try:
                metrics = await ops_metrics(port)
            except Exception:  # not listening yet
                continue
    finally:
        assert stop(again) == 0
    assert metrics.get("shipper_up") == 1
    assert not [name for name in metrics if "victim" in name]


async def _delete_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([topic])
        for _ in range(300):  # deletion is asynchronous on the broker
            if topic not in await admin.list_topics():
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"{topic} still listed after deletion")
    finally:
        await admin.close()


async def test_a_recreated_topic_is_new_records_not_duplicates(run: Run) -> None:
    """Issue 20 item 8: records without an `event.id` are told apart by their Kafka coordinates. A
    topic deleted and created again starts at offset 0 again; with the topic's id in the document
    id, its records are new documents, not 409 "duplicates" of the old topic's records."""
    n = 50
    index = f"logs-api_service-{run.namespace}"
    for generation in range(2):
        if generation:
            await _delete_topic(run.bootstrap, run.logs_topic)
        await create_topic(run.bootstrap, run.logs_topic)
        await produce(run.bootstrap, run.logs_topic, [_record(f"generation {generation} line {i}") for i in range(n)])
        port = free_port()
        shipper = run.start_shipper(f"shipper-{generation}", SHIPPER_HTTP_PORT=str(port))
        try:
            got = await wait_count(run.search_url, index, n * (generation + 1), within=60)
            consumed = 0.0
            while consumed < n:  # every record of this generation read: the count above is final
                await asyncio.sleep(0.2)
                consumed = (await ops_metrics(port)).get("shipper_consumed_total", 0.0)
            metrics = await ops_metrics(port)
        finally:
            assert stop(shipper) == 0
        assert metrics.get("shipper_duplicates_total") == 0
        assert got == n * (generation + 1)
    docs = await _sources(run, index)
    assert sorted(d["message"] for d in docs) == sorted(f"generation {g} line {i}" for g in range(2) for i in range(n))
