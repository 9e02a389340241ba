"""The source's rebalance rules with a scripted stand-in consumer (pure: no broker).

The sequence is the one from issue 12 item 2: a batch is in flight when a rebalance happens in
the middle of the next fetch; the partition comes back with its position reset to the group's
committed offset. Whatever the order, a commit never passes a record that was not processed and
never moves backwards.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError

from shipper.config import ShipperSettings
from shipper.source import KafkaSource, Message

TOPIC = "logs"
P0 = TopicPartition(TOPIC, 0)


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    value: bytes = b"{}"
    key: bytes | None = None


Step = Callable[["FakeConsumer"], Awaitable[None]]
EMPTY = "empty"  # a script entry: this getmany hands out nothing (the linger ran out)


@dataclass
class FakeConsumer:
    """One member of a group: a partition log without end, positions, the group's committed offsets."""

    per_call: int = 100  # records one getmany hands out at most
    script: list[Step | str | None] = field(default_factory=list)  # what the n-th getmany does first
    assigned: set[TopicPartition] = field(default_factory=set)
    positions: dict[TopicPartition, int] = field(default_factory=dict)
    group_committed: dict[TopicPartition, int] = field(default_factory=dict)
    commits: list[tuple[TopicPartition, int]] = field(default_factory=list)
    processed: set[int] = field(default_factory=set)  # offsets of P0 whose batch finished
    listener: ConsumerRebalanceListener | None = None

    def subscribe(self, topics: list[str], listener: ConsumerRebalanceListener) -> None:
        self.listener = listener

    async def start(self) -> None:
        await self.assign({P0})

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    async def assign(self, partitions: set[TopicPartition]) -> None:
        # like aiokafka: a fresh assignment starts from the group's committed offset
        self.assigned = set(partitions)
        self.positions = {tp: self.group_committed.get(tp, 0) for tp in partitions}
        assert self.listener is not None
        await self.listener.on_partitions_assigned(partitions)

    async def rebalance(self, others_commit: int | None = None) -> None:
        """Every partition revoked; meanwhile another member may commit; then all come back to us."""
        assert self.listener is not None
        await self.listener.on_partitions_revoked(set(self.assigned))
        back = set(self.assigned)
        self.assigned = set()
        if others_commit is not None:
            self.group_committed[P0] = others_commit
            self.processed.update(range(others_commit))
        await self.assign(back)

    async def getmany(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[TopicPartition, list[Any]]:
        step = self.script.pop(0) if self.script else None
        if step == EMPTY:
            return {}
        if callable(step):
            await step(self)
        out: dict[TopicPartition, list[Any]] = {}
        for tp in sorted(self.assigned):
            start = self.positions[tp]
            n = min(self.per_call, max_records or self.per_call)
            if n <= 0:
                continue
            out[tp] = [Record(tp.topic, tp.partition, o) for o in range(start, start + n)]
            self.positions[tp] = start + n
        return out

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        for tp, offset in offsets.items():
            assert tp in self.assigned, "commit for a partition we do not own"
            self.commits.append((tp, offset))
            self.group_committed[tp] = offset


def _source(consumer: FakeConsumer) -> KafkaSource:
    settings = ShipperSettings(batch_max_records=150, batch_linger_ms=60_000, shutdown_timeout_s=0.2,
                               topics=TOPIC)
    return KafkaSource(settings, consumer=consumer)


async def _take(source: KafkaSource) -> tuple[int, list[Message]]:
    messages = source.still_owned(await source.fetch())
    return source.register(messages), messages


async def _process(source: KafkaSource, consumer: FakeConsumer, token: int, messages: list[Message]) -> None:
    consumer.processed.update(m.offset for m in messages)
    source.finished(token)
    await source.commit_finished()


def _assert_honest(consumer: FakeConsumer) -> None:
    positions = [offset for _, offset in consumer.commits]
    assert positions == sorted(positions), f"a commit moved backwards: {positions}"
    for offset in positions:
        missing = set(range(offset)) - consumer.processed
        assert not missing, f"committed {offset} past unprocessed offsets {min(missing)}..{max(missing)}"


async def test_rebalance_inside_a_fetch_while_a_batch_is_in_flight() -> None:
    consumer = FakeConsumer(per_call=100)

    async def rebalance(c: FakeConsumer) -> None:
        await c.rebalance()

    # fetch 1: 0..99 then nothing more; fetch 2: 100..199, then a rebalance inside the second
    # getmany, after which it hands out 0..49 (the position reset to the committed offset, 0)
    consumer.script = [None, EMPTY, None, rebalance]
    source = _source(consumer)
    await source.start()
    stuck, _ = await _take(source)  # 0..99: never finishes (an engine outage, then the process dies)
    token, messages = await _take(source)
    await _process(source, consumer, token, messages)
    _assert_honest(consumer)
    for _ in range(3):  # the partition carries on from where the new tenure started
        consumer.script = [None, EMPTY]
        token, messages = await _take(source)
        await _process(source, consumer, token, messages)
        _assert_honest(consumer)
    assert consumer.commits[-1][1] == 350
    before = list(consumer.commits)
    source.finished(stuck)  # the old tenure's batch finishing late commits nothing
    await source.commit_finished()
    assert consumer.commits == before


async def test_rebalance_between_the_fetch_and_the_registration() -> None:
    """The main loop resumes after the fetch task returned: a rebalance can run in between."""
    consumer = FakeConsumer(per_call=100, script=[None, EMPTY])
    source = _source(consumer)
    await source.start()
    fetched = await source.fetch()  # 0..99
    await consumer.rebalance(others_commit=300)  # another member indexed and committed 0..299 meanwhile
    messages = source.still_owned(fetched)
    assert messages == []
    consumer.script = [None, EMPTY]
    token, messages = await _take(source)
    assert [m.offset for m in messages] == list(range(300, 400))
    await _process(source, consumer, token, messages)
    _assert_honest(consumer)
    assert consumer.commits == [(P0, 400)]


async def test_a_revoked_tenure_leaves_nothing_to_commit_later() -> None:
    """Finished but uncommitted when revoked (the commit failed): never committed afterwards."""
    consumer = FakeConsumer(per_call=100, script=[None, EMPTY])
    source = _source(consumer)
    await source.start()
    token, messages = await _take(source)
    real_commit = consumer.commit

    async def refuse(offsets: dict[TopicPartition, int]) -> None:
        raise CommitFailedError("the group has already rebalanced")

    consumer.commit = refuse  # type: ignore[method-assign]
    consumer.processed.update(m.offset for m in messages)
    source.finished(token)
    assert not await source.commit_finished()
    await consumer.rebalance(others_commit=1000)  # the listener's commit fails as well
    consumer.commit = real_commit  # type: ignore[method-assign]
    await source.commit_finished()
    assert consumer.commits == []
    consumer.script = [None, EMPTY]
    token, messages = await _take(source)
    await _process(source, consumer, token, messages)
    assert consumer.commits == [(P0, 1100)]
