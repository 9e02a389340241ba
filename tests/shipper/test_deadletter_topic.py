"""Issue 12 item 5 against the real broker and engine: the dead-letter topic is created at start,
and an entry whose record escapes to more than the topic's message limit still lands (cut, marked)
instead of retrying forever; one the broker refuses for good stops the shipper (issue 20 item 11)."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.conn import AIOKafkaConnection
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError, TopicAuthorizationFailedError
from aiokafka.protocol.metadata import MetadataRequest

from shipper.config import ShipperSettings
from shipper.producer import DeadLetterProducer, DeadLetterRefused
from shipper.topics import ENVELOPE_BYTES, TopicSetupError, ensure_dead_letter_topic
from tests.kafka_io import consume
from tests.shipper.harness import Run, count, create_topic, ids_in, log_record, produce, stop, wait_count

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


@pytest.mark.stack
async def test_creating_the_topic_asks_no_metadata_of_every_topic(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every shipper start creates (or finds) the dead-letter topic. Asking the broker for the metadata
    of all its topics to learn how many brokers there are costs CPU in proportion to the cluster:
    ~50 ms at each start on a broker with 2,000 topics (the test stack has more)."""
    asked: list[list[str] | None] = []
    send = AIOKafkaConnection.send

    def spy(self: AIOKafkaConnection, request: Any, expect_response: bool = True) -> Any:
        if isinstance(request, MetadataRequest):
            asked.append(request._topics)
        return send(self, request, expect_response)

    monkeypatch.setattr(AIOKafkaConnection, "send", spy)
    limit = await ensure_dead_letter_topic(ShipperSettings(kafka_bootstrap_servers=run.bootstrap,
                                                           dead_letter_topic=run.dead_topic))
    monkeypatch.undo()  # _topics() below asks for every topic, on purpose
    assert limit > 0 and run.dead_topic in await _topics(run.bootstrap)
    assert asked, "the spy saw no metadata request (aiokafka changed?)"
    assert None not in asked, f"metadata of every topic asked: {asked}"


class _Answer:
    def __init__(self, value: dict[str, Any]) -> None:
        self.value = value

    def to_object(self) -> dict[str, Any]:
        return self.value


class _RefusingAdmin:
    """A broker that answers CreateTopics with TOPIC_AUTHORIZATION_FAILED."""

    def __init__(self, exists: bool) -> None:
        self.exists = exists
        self._client = SimpleNamespace(cluster=SimpleNamespace(brokers=lambda: {1}))  # read at start

    async def start(self) -> None: ...

    async def close(self) -> None: ...

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


@pytest.mark.stack
async def test_a_topic_that_refuses_for_good_stops_the_shipper_with_a_clear_error(run: Run) -> None:
    """Issue 20 item 11: the dead-letter topic's limit is below what any entry can be cut to (16 KiB),
    so the broker answers MESSAGE_TOO_LARGE, which asking again never changes. The shipper stops,
    naming the topic, instead of retrying for ever; nothing is committed past the poison, and once
    the limit is raised a new shipper dead-letters it: produced == indexed + dead-lettered."""
    await create_topic(run.bootstrap, run.logs_topic)
    admin = AIOKafkaAdminClient(bootstrap_servers=run.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(run.dead_topic, 1, 1, topic_configs={"max.message.bytes": "4000"})])
        poison = b"not json " * 6000  # 54 KB: its entry is cut to the 16 KiB floor, over the topic's limit
        await produce(run.bootstrap, run.logs_topic, [log_record(0), poison, log_record(1)])
        shipper = run.start_shipper()
        try:
            code = await asyncio.to_thread(shipper.wait, 90)
        finally:
            stop(shipper)
        assert code == 1
        log = (run.logdir / "shipper.log").read_text()
        assert "DeadLetterRefused" in log and run.dead_topic in log and "MessageSizeTooLarge" in log
        assert await count(run.search_url, f"logs-elk.deadletter-{run.namespace}") == 0
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, run.dead_topic,
                                                  {"max.message.bytes": str(KAFKA_DEFAULT_LIMIT)})])
    finally:
        await admin.close()
    again = run.start_shipper("again")
    try:
        assert await wait_count(run.search_url, f"logs-elk.deadletter-{run.namespace}", 1, within=60) == 1
        assert await wait_count(run.search_url, f"logs-api_service-{run.namespace}", 2) == 2
    finally:
        assert stop(again) == 0
    assert sorted(await ids_in(run.search_url, f"logs-api_service-{run.namespace}")) == ["rec-0", "rec-1"]
    assert len(await consume(run.bootstrap, run.dead_topic, 2, wait=5)) == 1


class _RefusingProducer:
    def __init__(self, error: Exception, times: int = 1000) -> None:
        self.error, self.times, self.calls = error, times, 0

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> asyncio.Future[None]:
        self.calls += 1
        if self.calls <= self.times:
            raise self.error
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


@pytest.mark.parametrize("error", [TopicAuthorizationFailedError(), MessageSizeTooLargeError()])
async def test_publish_stops_at_a_refusal_that_does_not_pass(error: Exception) -> None:
    producer = DeadLetterProducer(ShipperSettings(dead_letter_topic="dl-x", retry_initial_s=0.001))
    producer.client = _RefusingProducer(error)  # type: ignore[assignment]
    with pytest.raises(DeadLetterRefused, match=rf"'dl-x'.*{type(error).__name__}"):
        await asyncio.wait_for(producer.publish([(None, b"{}")]), 5)


async def test_publish_waits_for_a_broker_that_is_away() -> None:
    producer = DeadLetterProducer(ShipperSettings(dead_letter_topic="dl-x", retry_initial_s=0.001,
                                                  retry_max_s=0.002))
    refusing = _RefusingProducer(KafkaConnectionError(), times=3)
    producer.client = refusing  # type: ignore[assignment]
    await asyncio.wait_for(producer.publish([(None, b"{}")]), 5)
    assert refusing.calls == 4
