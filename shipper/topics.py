"""The Kafka topic the shipper writes (the dead-letter topic): created at start when missing, and
the message limit its entries must fit.

Relying on the broker's auto-create would leave dead letters retrying forever where it is off,
so the topic is created explicitly (1 partition: dead letters are rare; replicated like a normal
topic, at most 3 copies). A broker that refuses is a clear error at start, not a stall later.
"""

from __future__ import annotations

from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, for_code

from shipper.config import ShipperSettings
from shipper.log import get_logger
from shipper.producer import max_request_bytes

log = get_logger("shipper.topics")

BROKER_DEFAULT_MAX_MESSAGE_BYTES = 1048588  # Kafka's message.max.bytes default
# the record batch and record headers around one entry (61 + ~30 bytes; the key is at most 1 KB)
ENVELOPE_BYTES = 2048
_EXISTS = 36  # TOPIC_ALREADY_EXISTS
_NOT_ALLOWED = (29, 31)  # TOPIC_AUTHORIZATION_FAILED, CLUSTER_AUTHORIZATION_FAILED


class TopicSetupError(Exception):
    """The dead-letter topic is missing and cannot be created: the shipper must not start."""


async def ensure_dead_letter_topic(settings: ShipperSettings, admin: Any = None) -> int:
    """Creates the dead-letter topic when missing; returns how large one serialised entry may be.

    `admin`: an AIOKafkaAdminClient stand-in for unit tests. KafkaError (broker away) propagates:
    the caller retries as for any start-up connection.
    """
    topic = settings.dead_letter_topic
    client = admin if admin is not None else AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers,
                                                                 client_id="elk-shipper-setup")
    try:
        await client.start()
        response = await client.create_topics([NewTopic(topic, 1, max(1, min(3, _brokers(client))))])
        for result in response.to_object()["topic_errors"]:
            code = int(result["error_code"])
            if code in (0, _EXISTS):
                if code == 0:
                    log.info("dead-letter topic created", topic=topic)
                continue
            name = for_code(code).__name__
            if code in _NOT_ALLOWED and await _exists(client, topic):
                continue  # may not create topics, but this one is there already
            hint = ("this client may not create it: create it (1 partition is enough) or grant CREATE on it"
                    if code in _NOT_ALLOWED else str(result.get("error_message") or ""))
            raise TopicSetupError(f"dead-letter topic {topic!r} (SHIPPER_DEAD_LETTER_TOPIC) is missing and "
                                  f"cannot be created: {name}; {hint}")
        limit = await _max_message_bytes(client, topic)
    finally:
        await client.close()
    return min(limit, max_request_bytes(settings)) - ENVELOPE_BYTES


def _brokers(client: Any) -> int:
    """The brokers of the cluster, from the metadata the client read when it started (asked for no
    topic). `describe_cluster()` would ask for every topic's: a broker with 2,000 topics costs ~50 ms
    of CPU to decode at each start, for this one number."""
    return len(client._client.cluster.brokers()) or 1


async def _exists(client: Any, topic: str) -> bool:
    try:
        found = await client.describe_topics([topic])
    except KafkaError:
        return False
    return any(t.get("topic") == topic and int(t.get("error_code", 1)) == 0 for t in found)


async def _max_message_bytes(client: Any, topic: str) -> int:
    """The topic's max.message.bytes (its own setting or the broker's), or Kafka's default when unreadable."""
    try:
        responses = await client.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, {"max.message.bytes": None})])
        for response in responses:
            for resource in response.to_object()["resources"]:
                for config in resource.get("config_entries") or []:
                    if config.get("config_names") == "max.message.bytes" and config.get("config_value"):
                        return int(config["config_value"])
    except (KafkaError, ValueError, KeyError, TypeError) as exc:
        log.warning("cannot read the dead-letter topic's message limit; assuming Kafka's default",
                    topic=topic, error=repr(exc), assumed=BROKER_DEFAULT_MAX_MESSAGE_BYTES)
    return BROKER_DEFAULT_MAX_MESSAGE_BYTES
