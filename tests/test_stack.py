"""The foundation works against the real servers: Kafka round trips with committed offsets,
bulk indexing and search in OpenSearch, and a data stream behind a composable template."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from opensearchpy import AsyncOpenSearch
from opensearchpy.helpers import async_bulk

pytestmark = pytest.mark.stack


async def _create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()


async def _consume(bootstrap: str, topic: str, group: str, want: int, commit_after: int | None) -> list[int]:
    """Read `want` records in a consumer group; commit after the first `commit_after` of them."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    seen: list[int] = []
    try:
        async with asyncio.timeout(30):
            while len(seen) < want:
                batches = await consumer.getmany(timeout_ms=500, max_records=1)
                for tp, messages in batches.items():
                    for message in messages:
                        seen.append(orjson.loads(message.value)["n"])
                        if commit_after is not None and len(seen) == commit_after:
                            await consumer.commit({tp: message.offset + 1})
    finally:
        await consumer.stop()
    return seen


async def test_kafka_group_resumes_from_committed_offset(kafka_bootstrap: str, topic: str, unique: str) -> None:
    await _create_topic(kafka_bootstrap, topic, partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for n in range(10):
            await producer.send(topic, orjson.dumps({"n": n}), key=b"api-service")
        await producer.flush()
    finally:
        await producer.stop()

    group = f"group-{unique}"
    first = await _consume(kafka_bootstrap, topic, group, want=6, commit_after=4)
    assert first == [0, 1, 2, 3, 4, 5]
    # a restarted consumer in the same group starts after the last commit (4), not at 6 or 0
    second = await _consume(kafka_bootstrap, topic, group, want=6, commit_after=None)
    assert second == [4, 5, 6, 7, 8, 9]

    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group)
    await consumer.start()
    try:
        assert await consumer.committed(TopicPartition(topic, 0)) == 4
    finally:
        await consumer.stop()


async def test_bulk_index_and_search(search_url: str, unique: str) -> None:
    client = AsyncOpenSearch(hosts=[search_url])
    index = f"test-bulk-{unique}"
    try:
        actions = [
            {"_index": index, "_id": f"doc-{n}", "_source": {"n": n, "service": "api" if n % 2 else "auth"}}
            for n in range(100)
        ]
        ok, errors = await async_bulk(client, actions, refresh="wait_for")
        assert (ok, errors) == (100, [])
        result = await client.search(index=index, body={"query": {"term": {"service.keyword": "auth"}}},
                                     params={"track_total_hits": "true"})
        assert result["hits"]["total"]["value"] == 50
    finally:
        await client.indices.delete(index=index, ignore_unavailable=True)
        await client.close()


async def test_data_stream_with_composable_template(search_url: str, unique: str) -> None:
    client = AsyncOpenSearch(hosts=[search_url])
    stream = f"logs-test{unique}-default"
    template = f"test-{unique}"
    try:
        await client.indices.put_index_template(name=template, body={
            "index_patterns": [f"logs-test{unique}-*"],
            "data_stream": {},
            "priority": 700,
            "template": {"mappings": {"properties": {
                "@timestamp": {"type": "date"},
                "message": {"type": "match_only_text"},
                "service": {"properties": {"name": {"type": "keyword"}}},
            }}},
        })
        body = b"".join(
            orjson.dumps({"create": {"_id": f"id-{n}"}}) + b"\n"
            + orjson.dumps({"@timestamp": "2026-11-28T12:00:00Z", "message": f"line {n}",
                            "service": {"name": "api-service"}}) + b"\n"
            for n in range(5)
        )
        response = await client.bulk(index=stream, body=body, params={"refresh": "true"})
        assert not response["errors"]
        assert [item["create"]["status"] for item in response["items"]] == [201] * 5
        # the same ids again: create refuses them (409), which is how redelivery stays duplicate-free
        again = await client.bulk(index=stream, body=body, params={"refresh": "true"})
        assert [item["create"]["status"] for item in again["items"]] == [409] * 5

        streams = await client.indices.get_data_stream(name=stream)
        assert streams["data_streams"][0]["template"] == template
        count = await client.count(index=stream)
        assert count["count"] == 5
        hits = await client.search(index=stream, body={"query": {"match": {"message": "line"}}})
        assert hits["hits"]["hits"][0]["_index"].startswith(f".ds-{stream}-")
    finally:
        await client.indices.delete_data_stream(name=stream, ignore=[404])
        await client.indices.delete_index_template(name=template, ignore=[404])
        await client.close()
