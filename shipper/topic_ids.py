"""Kafka's topic ids, which tell a record from an older one at the same `<topic>-<partition>-<offset>`.

Offsets start again at 0 when a topic is deleted and created again, and another cluster (a mirror,
a second site) has its own records at the same coordinates; the engine's `create` would answer 409
for the new record and it would be lost as a "duplicate". Kafka gives every topic a random UUID at
creation (KIP-516, Kafka 2.8+: a recreated topic gets a new one, another cluster's topic has its
own), so the documents' ids carry it (shipper/ids.py, docs/ARCHITECTURE.md *Document ids*).

aiokafka 0.14 asks for metadata only up to version 5, before topic ids (version 10), so the one
request needed is defined here: Metadata v12 (flexible), asked for the topics of a batch. Ids are
kept per topic and forgotten on every partition assignment (a deleted topic leaves the group's
assignment, a recreated one comes back with one), so a batch costs no request in steady flow.
A broker without topic ids (before 2.8) leaves them out: ids stay `<topic>-<partition>-<offset>`.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Iterable, Mapping
from io import BytesIO
from typing import Any

from aiokafka.errors import KafkaError
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    AbstractType,
    Boolean,
    CompactArray,
    CompactString,
    Int16,
    Int32,
    Schema,
    TaggedFields,
)

from shipper.log import get_logger

log = get_logger("shipper")

NO_ID = bytes(16)  # Kafka's "no topic id" (Uuid.ZERO_UUID)


class _Uuid(AbstractType[bytes]):
    @classmethod
    def encode(cls, value: bytes) -> bytes:
        return value

    @classmethod
    def decode(cls, data: BytesIO) -> bytes:
        value = data.read(16)
        if len(value) != 16:
            raise ValueError("Buffer underrun decoding a UUID")
        return value


class MetadataResponse_v12(Response):
    API_KEY = 3
    API_VERSION = 12
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("brokers", CompactArray(("node_id", Int32), ("host", CompactString("utf-8")), ("port", Int32),
                                 ("rack", CompactString("utf-8")), ("tags", TaggedFields))),
        ("cluster_id", CompactString("utf-8")),
        ("controller_id", Int32),
        ("topics", CompactArray(
            ("error_code", Int16),
            ("name", CompactString("utf-8")),
            ("topic_id", _Uuid),
            ("is_internal", Boolean),
            ("partitions", CompactArray(("error_code", Int16), ("partition_index", Int32), ("leader_id", Int32),
                                        ("leader_epoch", Int32), ("replica_nodes", CompactArray(Int32)),
                                        ("isr_nodes", CompactArray(Int32)),
                                        ("offline_replicas", CompactArray(Int32)), ("tags", TaggedFields))),
            ("topic_authorized_operations", Int32),
            ("tags", TaggedFields))),
        ("tags", TaggedFields),
    )


class MetadataRequest_v12(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = 3
    API_VERSION = 12
    RESPONSE_TYPE = MetadataResponse_v12
    SCHEMA = Schema(
        ("topics", CompactArray(("topic_id", _Uuid), ("name", CompactString("utf-8")), ("tags", TaggedFields))),
        ("allow_auto_topic_creation", Boolean),
        ("include_topic_authorized_operations", Boolean),
        ("tags", TaggedFields),
    )


class TopicIdsRequest(Request[MetadataRequest_v12]):
    API_KEY = 3

    def __init__(self, topics: list[str]) -> None:
        self.topics = topics

    def build(self, request_struct_class: type[MetadataRequest_v12]) -> MetadataRequest_v12:
        return request_struct_class([(NO_ID, topic, {}) for topic in self.topics], False, False, {})


def encode_id(raw: bytes) -> str:
    """As Kafka prints a topic id (`kafka-topics --describe`): URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def read_ids(response: Any) -> dict[str, str]:
    """topic -> id, for the topics the broker knows (error 0) and has an id for."""
    out: dict[str, str] = {}
    for error_code, name, topic_id, *_ in response.topics:
        if error_code == 0 and name and topic_id != NO_ID:
            out[name] = encode_id(topic_id)
    return out


class TopicIds:
    """Topic ids by name, asked of the broker through `client()` (an aiokafka client) when a batch
    names a topic not known yet; forgotten on every assignment (a rebalance hook)."""

    def __init__(self, client: Callable[[], Any], retry_initial_s: float = 0.2, retry_max_s: float = 10.0) -> None:
        self.client = client
        self.ids: dict[str, str] = {}
        self.unsupported = False  # a broker before topic ids: ids without them
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s

    async def partitions_revoked(self, revoked: list[tuple[str, int]]) -> None:
        return None

    async def partitions_assigned(self, assigned: list[tuple[str, int]], counts: dict[str, int]) -> None:
        self.ids.clear()  # a topic may have been deleted and created again meanwhile

    async def of(self, topics: Iterable[str]) -> Mapping[str, str]:
        """The ids of `topics`; waits for the broker while it cannot answer (the batch waits too)."""
        missing = sorted({t for t in topics if t not in self.ids})
        if not missing or self.unsupported:
            return self.ids
        delay = self.retry_initial_s
        while True:
            try:
                client = self.client()
                response = await client.send(client.get_random_node(), TopicIdsRequest(missing))
                self.ids.update(read_ids(response))
                return self.ids
            except (NotImplementedError, KafkaError) as exc:
                if isinstance(exc, NotImplementedError) or type(exc).__name__ == "IncompatibleBrokerVersion":
                    log.warning("the broker has no topic ids (Kafka before 2.8): document ids without them",
                                error=repr(exc))
                    self.unsupported = True
                    return self.ids
                log.warning("topic ids unavailable; retrying", error=repr(exc), retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(self.retry_max_s, delay * 2)
