"""Stage 1: the Kafka source. A consumer group over the configured topics, batches by count and
linger time, manual commits only, and a rebalance listener that lets the batch in progress
finish and commit before partitions move to another shipper."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka.structs import ConsumerRecord

from shipper.config import ShipperSettings


class _FinishBeforeRevoke(ConsumerRebalanceListener):
    def __init__(self, source: KafkaSource) -> None:
        self.source = source

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        # the batch being processed holds the lock until it is indexed and committed
        async with self.source.batch_lock:
            pass

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        return None


class KafkaSource:
    def __init__(self, settings: ShipperSettings) -> None:
        self.settings = settings
        self.batch_lock = asyncio.Lock()
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=settings.group_id,
            client_id=f"elk-shipper-{settings.group_id}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=max(1024 * 1024, settings.max_record_bytes * 2),
            fetch_max_bytes=max(52428800, settings.max_record_bytes * 4),
            # while the engine is down we do not poll (Kafka is the buffer); staying in the group
            # for that long is what we want, heartbeats keep the membership alive
            max_poll_interval_ms=3_600_000,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=3_000,
            rebalance_timeout_ms=60_000,
        )

    async def start(self) -> None:
        self.consumer.subscribe(self.settings.topic_list, listener=_FinishBeforeRevoke(self))
        await self.consumer.start()

    async def fetch(self) -> list[ConsumerRecord[bytes, bytes]]:
        batches = await self.consumer.getmany(
            timeout_ms=self.settings.batch_linger_ms, max_records=self.settings.batch_max_records)
        return [message for messages in batches.values() for message in messages]

    async def commit(self, positions: dict[tuple[str, int], int]) -> bool:
        """False when a rebalance took the partitions first; their new owner redelivers (same ids)."""
        if not positions:
            return True
        try:
            await self.consumer.commit({TopicPartition(t, p): o for (t, p), o in positions.items()})
            return True
        except (CommitFailedError, KafkaError):
            return False

    async def lag(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for tp in self.consumer.assignment():
            high = self.consumer.highwater(tp)
            if high is None:
                continue
            try:
                position = await self.consumer.position(tp)
            except (KafkaError, AssertionError):
                continue
            out[f"{tp.topic}/{tp.partition}"] = max(0, high - position)
        return out

    def assigned(self) -> bool:
        return bool(self.consumer.assignment())

    async def stop(self) -> None:
        await self.consumer.stop()
