"""Stage 1: the Kafka source. A consumer group over the configured topics, batches by count,
bytes and linger time, manual commits only, and a rebalance listener that lets the batches in
progress on revoked partitions finish (within a bound), commits what is finished and forgets
the rest before the partitions move to another shipper.

Two rules keep commits honest across rebalances:
- records handed out before a revocation are never registered after it: every chunk `getmany`
  returns is stamped with the revocation count at that moment, and `register` drops the records
  of partitions revoked since (their new owner, or this process on reassignment, reads them again
  from the group's committed offset);
- a tenure's leftovers never outlive it: the listener commits what is finished and the tracker
  forgets the rest (see shipper.commit), so nothing of it is committed later.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Protocol, TypeAlias

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import ConsumerRecord

from shipper.commit import TP, OffsetTracker
from shipper.config import ShipperSettings
from shipper.log import get_logger

log = get_logger("shipper.source")
_value, _partition, _offset = attrgetter("value"), attrgetter("topic", "partition"), attrgetter("offset")

Message: TypeAlias = "ConsumerRecord[bytes, bytes]"


class RebalanceHook(Protocol):
    """Told which partitions this replica stops and starts owning (the health monitor's ownership)."""

    async def partitions_revoked(self, revoked: list[TP]) -> None: ...

    async def partitions_assigned(self, assigned: list[TP], counts: dict[str, int]) -> None: ...


@dataclass(slots=True)
class Fetched:
    """One batch as fetched: chunks of messages, each with the revocation count when it was handed out."""

    chunks: list[tuple[int, list[Message]]] = field(default_factory=list)

    def __len__(self) -> int:
        return sum(len(messages) for _, messages in self.chunks)


class _CommitFinishedOnRevoke(ConsumerRebalanceListener):
    def __init__(self, source: KafkaSource, bound_s: float) -> None:
        self.source = source
        self.bound_s = bound_s

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        keys = [(tp.topic, tp.partition) for tp in revoked]
        if not keys:
            return
        # first, before any await: whatever a fetch collected for these partitions is now stale
        self.source.revoked(keys)
        tracker = self.source.tracker
        deadline = time.monotonic() + self.bound_s
        while tracker.unfinished(keys) and (left := deadline - time.monotonic()) > 0:
            self.source.progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.source.progress.wait(), left)
        await self.source.commit_finished(keys, timeout_s=max(1.0, deadline - time.monotonic()))
        left = tracker.unfinished(keys)
        tracker.drop(keys)
        log.info("partitions revoked", partitions=len(keys), unfinished_batches_dropped=left)
        await self.source.hand_over(keys)

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        keys = [(tp.topic, tp.partition) for tp in assigned]
        log.info("partitions assigned", partitions=sorted(f"{t}/{p}" for t, p in keys))
        if not self.source.hooks:
            return
        # every subscribed topic's, not only the assigned ones': a service's stream is owned through its
        # partition of the first logs topic even by a replica that holds none of that topic
        topics = {t for t, _ in keys} | set(self.source.settings.topic_list)
        counts = {t: len(self.source.consumer.partitions_for_topic(t) or ()) for t in topics}
        for hook in self.source.hooks:
            try:
                await hook.partitions_assigned(keys, counts)
            except Exception:
                log.exception("rebalance hook failed", hook=type(hook).__name__)
        self.source.taken_over(keys)


class KafkaSource:
    def __init__(self, settings: ShipperSettings, consumer: Any = None, hooks: Sequence[RebalanceHook] = ()) -> None:
        """`consumer`: an AIOKafkaConsumer stand-in, for unit tests of the rebalance rules; `hooks`: told of
        every revocation (after the finished batches are committed) and assignment."""
        self.settings = settings
        self.hooks = hooks
        self.tracker = OffsetTracker()
        self.progress = asyncio.Event()  # set whenever a batch finishes (the rebalance listener waits on it)
        self._commit_lock = asyncio.Lock()
        self._revocations = 0
        self._revoked_at: dict[TP, int] = {}  # partition -> revocation count when it was last revoked
        # Partitions whose assignment hooks (the monitor's restore) are done. aiokafka may hand out
        # records of a new assignment before its listener has run or finished; those are put back
        # (seek) and their partition paused until then, so no record is seen before its restore.
        self._ready: set[TP] = set()
        self._held: set[TP] = set()
        self._handed_over = False
        self.consumer = consumer if consumer is not None else AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=settings.group_id,
            client_id=f"elk-shipper-{settings.group_id}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # the prefetch buffer is the only memory Kafka costs us: bounded per partition and overall
            max_partition_fetch_bytes=max(1024 * 1024, settings.max_record_bytes * 2),
            fetch_max_bytes=max(settings.batch_max_bytes, settings.max_record_bytes * 4),
            # while the engine is down we do not poll (Kafka is the buffer); staying in the group
            # for that long is what we want, heartbeats keep the membership alive
            max_poll_interval_ms=3_600_000,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=1_000,  # a joining replica gets its share within about a second
            rebalance_timeout_ms=60_000,
        )

    async def start(self) -> None:
        bound = min(self.settings.shutdown_timeout_s, 45.0)
        self.consumer.subscribe(self.settings.topic_list, listener=_CommitFinishedOnRevoke(self, bound))
        await self.consumer.start()

    def revoked(self, partitions: Iterable[TP]) -> None:
        self._revocations += 1
        for key in partitions:
            self._revoked_at[key] = self._revocations
            self._ready.discard(key)
            self._held.discard(key)

    async def hand_over(self, partitions: list[TP]) -> None:
        """Tell the hooks (the health monitor's handover) that these partitions leave this replica."""
        for hook in self.hooks:
            try:
                await hook.partitions_revoked(partitions)
            except Exception:
                log.exception("rebalance hook failed", hook=type(hook).__name__)

    def taken_over(self, partitions: Iterable[TP]) -> None:
        """The assignment hooks are done: records of these partitions may be handed out."""
        self._ready.update(partitions)
        owned = self.consumer.assignment()
        resume = [TopicPartition(t, p) for t, p in self._held if (t, p) in self._ready]
        self._held.difference_update(self._ready)
        if resume := [tp for tp in resume if tp in owned]:
            self.consumer.resume(*resume)

    def _hold(self, tp: TopicPartition, first_offset: int) -> bool:
        """Put back records of a partition whose assignment hooks are not done yet; True if held."""
        key = (tp.topic, tp.partition)
        if not self.hooks or key in self._ready:
            return False
        try:
            self.consumer.seek(tp, first_offset)
            self.consumer.pause(tp)
        except (IllegalStateError, AssertionError):  # revoked meanwhile: its new owner reads it
            return True
        self._held.add(key)
        return True

    async def fetch(self) -> Fetched:
        """One batch: up to batch_max_records and about batch_max_bytes, waiting at most batch_linger_ms."""
        out = Fetched()
        count = size = 0
        deadline = time.monotonic() + self.settings.batch_linger_ms / 1000
        while True:
            left_ms = max(0, int((deadline - time.monotonic()) * 1000))
            batches = await self.consumer.getmany(timeout_ms=left_ms,
                                                  max_records=self.settings.batch_max_records - count)
            # getmany may have waited through a rebalance; what it returns belongs to the assignment
            # at its return, so the stamp is taken now, with no await in between
            stamp = self._revocations
            for tp, messages in batches.items():
                if messages and self._hold(tp, messages[0].offset):
                    continue
                out.chunks.append((stamp, messages))
                count += len(messages)
                size += sum(map(len, filter(None, map(_value, messages))))  # no Python step per record
            if (count >= self.settings.batch_max_records or size >= self.settings.batch_max_bytes
                    or left_ms == 0 or (count and not batches)):
                return out

    def still_owned(self, fetched: Fetched) -> list[Message]:
        """The fetched messages less those of partitions revoked since they were handed out: they
        were never tracked, so processing them could only end in a commit for a tenure that is over.
        Call `register` on the result before any await."""
        messages: list[Message] = []
        for stamp, chunk in fetched.chunks:
            if not chunk:
                continue
            if self._revoked_at.get((chunk[0].topic, chunk[0].partition), -1) > stamp:
                log.info("records fetched before a rebalance left for redelivery", records=len(chunk),
                         partition=f"{chunk[0].topic}/{chunk[0].partition}")
                continue
            messages += chunk
        return messages

    def register(self, messages: list[Message]) -> int:
        # the tracker keeps each partition's newest offset: the last of its records in the batch
        # (offsets only grow within a fetch), found without a Python step per record
        last = dict(zip(map(_partition, messages), map(_offset, messages), strict=True))
        return self.tracker.register((topic, partition, offset) for (topic, partition), offset in last.items())

    def finished(self, token: int) -> None:
        self.tracker.finish(token)
        self.progress.set()

    async def commit_finished(self, partitions: Iterable[TP] | None = None, timeout_s: float | None = None) -> bool:
        """Commit every finished prefix on the partitions we still own. False when a rebalance
        took them first (their new owner redelivers: same ids, so no duplicates) or when the
        broker did not answer within `timeout_s` (the next commit carries the position on)."""
        async with self._commit_lock:
            owned = {(tp.topic, tp.partition) for tp in self.consumer.assignment()}
            wanted = owned if partitions is None else owned.intersection(partitions)
            positions = self.tracker.committable(wanted)
            if not positions:
                return True
            try:
                await asyncio.wait_for(
                    self.consumer.commit({TopicPartition(t, p): o for (t, p), o in positions.items()}), timeout_s)
            except (CommitFailedError, IllegalStateError, KafkaError, TimeoutError) as exc:
                log.warning("commit failed; the records will be redelivered", error=repr(exc))
                return False
            self.tracker.committed(positions)
            return True

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
        """Leaves the group. aiokafka leaves without calling the revoke listener, so the hooks are
        told here: a deploy or scale-down hands its services over like a rebalance does."""
        if not self._handed_over:
            self._handed_over = True
            owned = sorted((tp.topic, tp.partition) for tp in self.consumer.assignment())
            if owned:
                await self.hand_over(owned)
        await self.consumer.stop()
