"""The Kafka producer of the dead-letter topic, shared by `shipper run` and `shipper replay`; it
also carries the health monitor's stream shares (shipper/health/shares.py).

Idempotent and acks=all: a dead letter counts as durable only once every in-sync replica has it,
and the batch it came from is committed only after that. A broker that is away is waited for; a
refusal that asking again cannot change (the entry over the topic's limit, an ACL that denies the
write) stops the batch with DeadLetterRefused, which names the topic and the cause.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError

from collector.contract.streams import SHARE_HEADER
from shipper.config import ShipperSettings
from shipper.log import get_logger

log = get_logger("shipper")


class DeadLetterRefused(Exception):
    """The broker refuses the dead letters for a reason that does not pass (not retriable)."""


def transient(exc: KafkaError) -> bool:
    """Worth asking again: aiokafka's retriable errors, and a timeout (the broker is away)."""
    return bool(exc.retriable) or isinstance(exc, KafkaTimeoutError)


def max_request_bytes(settings: ShipperSettings) -> int:
    """The producer's own limit on one request (a replayed record must fit, so: three records' worth)."""
    return max(1048576, settings.max_record_bytes * 3)


class DeadLetterProducer:
    def __init__(self, settings: ShipperSettings) -> None:
        self.settings = settings
        self.client = self._new_client()

    def _new_client(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap_servers, acks="all",
                                enable_idempotence=True,
                                max_request_size=max_request_bytes(self.settings))

    async def start(self) -> None:
        """Raises KafkaError when the broker cannot be reached; the next start uses a fresh client
        (one whose start failed cannot be started again)."""
        try:
            await self.client.start()
        except BaseException:
            await self.stop()
            self.client = self._new_client()
            raise

    async def stop(self) -> None:
        try:
            await self.client.stop()
        except Exception as exc:  # stopping a client that never started, or a broker gone
            log.debug("dead-letter producer stop", error=repr(exc))

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        await self.client.send_and_wait(topic, value, key=key)

    async def send_shares(self, messages: Sequence[tuple[str, int, bytes]]) -> None:
        """Stream shares (shipper/health/shares.py), each on the partition of its services' owner,
        with the share header; returns once Kafka has them all (the caller bounds the wait)."""
        futures = [await self.client.send(topic, value, partition=partition, headers=[(SHARE_HEADER, b"1")])
                   for topic, partition, value in messages]
        await asyncio.gather(*futures)

    async def publish(self, entries: Sequence[tuple[bytes | None, bytes]]) -> None:
        """Until the broker has them all: the batch is not committed before its dead letters are durable."""
        delay = self.settings.retry_initial_s
        while True:
            try:
                futures = [await self.client.send(self.settings.dead_letter_topic, value, key=key)
                           for key, value in entries]
                await asyncio.gather(*futures)
                return
            except KafkaError as exc:
                if not transient(exc):
                    # retrying would stall the partition forever: stop instead (the batch stays
                    # uncommitted and is redelivered once the cause is fixed)
                    raise DeadLetterRefused(
                        f"the dead-letter topic {self.settings.dead_letter_topic!r} (SHIPPER_DEAD_LETTER_TOPIC) "
                        f"refuses the entries and asking again cannot help: {exc!r}. Fix the topic's limits or "
                        "the shipper's Kafka permissions; the batch is not committed.") from exc
                log.warning("dead-letter topic unavailable; retrying", error=repr(exc), retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(self.settings.retry_max_s, delay * 2)
