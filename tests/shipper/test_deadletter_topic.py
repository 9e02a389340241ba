"""Issue 12 item 5 against the real broker and engine: the dead-letter topic is created at start,
and an entry whose record escapes to more than the topic's message limit still lands (cut, marked)
instead of retrying forever."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shipper.config import ShipperSettings
from shipper.topics import ENVELOPE_BYTES, TopicSetupError, ensure_dead_letter_topic
from tests.kafka_io import consume
from tests.shipper.harness import Run, create_topic, log_record, produce, stop, wait_count

KAFKA_DEFAULT_LIMIT = 1048588  # message.max.bytes out of the box (the test stack allows 10 MB)
CONTROL = bytes(range(1, 32)).replace(b"\n", b"")


async def _topics(bootstrap: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return await admin.list_topics()
    finally:
        await admin.close()


@pytest.mark.stack
async def test_the_dead_letter_topic_exists_once_the_shipper_consumes(run: Run) -> None:
    await create_topic(run.bootstrap, run.logs_topic)
    assert run.dead_topic not in await _topics(run.bootstrap)
    shipper = run.start_shipper()
    try:
        await produce(run.bootstrap, run.logs_topic, [log_record(0)])
        assert await wait_count(run.search_url, f"logs-api_service-{run.namespace}", 1) == 1
        # no dead letter yet: the topic is there because the shipper made it
        assert run.dead_topic in await _topics(run.bootstrap)
    finally:
        assert stop(shipper) == 0


@pytest.mark.stack
async def test_an_entry_escaping_past_the_topic_limit_still_lands(run: Run) -> None:
    await create_topic(run.bootstrap, run.logs_topic)
    admin = AIOKafkaAdminClient(bootstrap_servers=run.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(run.dead_topic, 1, 1,
                                            topic_configs={"max.message.bytes": str(KAFKA_DEFAULT_LIMIT)})])
    finally:
        await admin.close()
    poison = (CONTROL * (200_000 // len(CONTROL) + 1))[:200_000]  # not JSON; ~1.1 MB once escaped
    await produce(run.bootstrap, run.logs_topic, [log_record(0), poison, log_record(1)])
    shipper = run.start_shipper()
    try:
        dead = await wait_count(run.search_url, f"logs-elk.deadletter-{run.namespace}", 1, within=45)
        assert dead == 1, "the dead letter never landed"
        assert await wait_count(run.search_url, f"logs-api_service-{run.namespace}", 2) == 2
        assert shipper.poll() is None
    finally:
        assert stop(shipper) == 0
    entries = await consume(run.bootstrap, run.dead_topic, 1, wait=10)
    assert len(entries) == 1
    assert len(entries[0].value) <= KAFKA_DEFAULT_LIMIT - ENVELOPE_BYTES
    letter = orjson.loads(entries[0].value)["dead_letter"]
    assert letter["truncated"] is True and letter["original_bytes"] == len(poison)
    assert poison.decode().startswith(letter["original"]) and len(letter["original"]) > 100_000


class _Answer:
    def __init__(self, value: dict[str, Any]) -> None:
        self.value = value

    def to_object(self) -> dict[str, Any]:
        return self.value


class _RefusingAdmin:
    """A broker that answers CreateTopics with TOPIC_AUTHORIZATION_FAILED."""

    def __init__(self, exists: bool) -> None:
        self.exists = exists

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def describe_cluster(self) -> dict[str, Any]:
        return {"brokers": [{"node_id": 1}]}

    async def create_topics(self, topics: list[NewTopic]) -> _Answer:
        return _Answer({"topic_errors": [{"topic": topics[0].name, "error_code": 29, "error_message": None}]})

    async def describe_topics(self, topics: list[str]) -> list[dict[str, Any]]:
        return [{"topic": topics[0], "error_code": 0 if self.exists else 3}]

    async def describe_configs(self, resources: list[Any]) -> list[_Answer]:
        entry = {"config_names": "max.message.bytes", "config_value": "500000"}
        return [_Answer({"resources": [{"config_entries": [entry]}]})]


async def test_a_topic_that_may_not_be_created_is_a_clear_error_at_start() -> None:
    settings = ShipperSettings(dead_letter_topic="dl-missing")
    started = time.monotonic()
    with pytest.raises(TopicSetupError, match=r"dl-missing.*SHIPPER_DEAD_LETTER_TOPIC.*TopicAuthorizationFailed"):
        await ensure_dead_letter_topic(settings, admin=_RefusingAdmin(exists=False))
    assert time.monotonic() - started < 1
    # may not create topics, but the topic is there: fine, and its own limit counts
    limit = await ensure_dead_letter_topic(settings, admin=_RefusingAdmin(exists=True))
    assert limit == 500_000 - ENVELOPE_BYTES
