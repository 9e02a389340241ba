"""Kafka sink: records batched per partition (the key's partition, as aiokafka's default
partitioner picks it for the library's producer), sent with acks=all.

Records are sent in rounds: a round is every batch open at the moment it is sealed. A round's marks
say, per file, the end of the last record in it; rounds are settled strictly in order, so when a
round is settled every record before those ends has been acknowledged, and the marks may go to the
registry. A failed round fails everything after it too: the caller rewinds the files.

While Kafka is away the sink follows the intakes' rule (collector.kafka_link): `start` makes no
producer until a bootstrap server answers with a real peer (never its own connection), refuses at
once (KafkaAway, no network) until a wait that doubles per failed try (0.5 s up to 5 s) has
passed, and says once that Kafka is away and once that it is back. The tailer's cap is shorter than
the intakes' (30 s): its files hold what waits, and a try is one TCP connect, so it reconnects soon
after the broker is back (a broker just restarted often refuses the first producer start as well).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

import collector
from collector.kafka_link import broker_listens, next_wait, quiet_aiokafka

log = collector.get_logger("collector.tail")

MAX_ROUNDS = 6
FIRST_WAIT_S = 0.5  # after the first failed try while Kafka is away; doubles per failed try
MAX_WAIT_S = 5.0
OVERHEAD = 70  # what a record takes in a batch besides its key and value (counted against the bound)


@dataclass
class Round:
    futures: list[asyncio.Future[Any]]
    marks: dict[Any, tuple[int, int]]  # FileTail -> (gen, end)
    records: int
    size: int


@dataclass
class _Open:
    batches: dict[int, Any] = field(default_factory=dict)  # partition -> BatchBuilder
    sealed: list[tuple[int, Any]] = field(default_factory=list)  # full batches of this round
    marks: dict[Any, tuple[int, int]] = field(default_factory=dict)
    records: int = 0
    size: int = 0
    since: float = 0.0


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class KafkaAway(Exception):
    """Kafka is away: no producer was made (the reason says why, or how long until the next try)."""


class KafkaSink:
    def __init__(self, bootstrap: str, topic: str, linger_ms: int = 20, request_timeout_s: float = 15.0,
                 batch_bytes: int = 1 << 20, compression: str = "zstd", connections: int = 3,
                 clock: Any = time.monotonic):
        self.bootstrap = bootstrap
        self.topic = topic
        self.linger_s = linger_ms / 1000
        self.request_timeout_s = request_timeout_s
        self.batch_bytes = batch_bytes
        self.max_record = batch_bytes - 1024  # what one record may take of an empty batch
        self.compression = None if compression == "none" else compression
        self.producer: AIOKafkaProducer | None = None  # the one batches are built with
        self.producers: list[AIOKafkaProducer] = []
        self.connections = connections
        self._turn = 0
        self.partitions: list[int] = []
        self.partitioner = DefaultPartitioner()
        self.open = _Open()
        self.rounds: deque[Round] = deque()
        self.inflight_bytes = 0
        self.delivered = 0
        self._part_cache: dict[bytes, int] = {}
        self.clock = clock
        self.away: str | None = None  # why Kafka is away, while it is
        self.wait_s = FIRST_WAIT_S
        self.retry_at = 0.0
        quiet_aiokafka()

    def _new_producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=0,
                                max_batch_size=self.batch_bytes, max_request_size=self.batch_bytes * 4,
                                request_timeout_ms=int(self.request_timeout_s * 1000),
                                compression_type=self.compression, enable_idempotence=False)

    async def start(self) -> None:
        """`connections` producers: aiokafka has one request in flight per broker connection, so
        rounds take turns over several to keep the broker busy (like librdkafka's pipelining).
        KafkaAway while Kafka is away (module docstring)."""
        if self.away is not None and self.clock() < self.retry_at:
            raise KafkaAway(f"{self.away}; next try in {self.retry_at - self.clock():.1f} s")
        absent = await broker_listens(self.bootstrap, self.request_timeout_s)
        if absent is not None:
            self._failed(absent)
            raise KafkaAway(absent)
        producers = [self._new_producer() for _ in range(self.connections)]
        try:
            async with asyncio.timeout(self.request_timeout_s):  # a broker that accepts but does not answer
                for producer in producers:
                    await producer.start()
                self.partitions = sorted(await producers[0].partitions_for(self.topic))
                for producer in producers[1:]:
                    await producer.partitions_for(self.topic)
        except BaseException as exc:
            for producer in producers:
                try:
                    await producer.stop()
                except Exception:  # stopping a producer whose broker is gone: nothing more to do
                    pass
            if isinstance(exc, Exception):
                self._failed(f"{type(exc).__name__}: {exc}"[:200])
            raise
        if self.away is not None:
            log.warning("kafka available again", topic=self.topic)
            self.away = None
        self.producers = producers
        self.producer = producers[0]
        self._part_cache.clear()

    def _failed(self, reason: str) -> None:
        if self.away is None:
            log.warning("kafka unavailable; reading paused until it is back", reason=reason)
            self.wait_s = FIRST_WAIT_S
        else:
            self.wait_s = next_wait(self.wait_s, FIRST_WAIT_S, MAX_WAIT_S)
        self.away = reason
        self.retry_at = self.clock() + self.wait_s

    async def stop(self) -> None:
        """Drops what is open or in flight (the caller rewinds to what was acknowledged)."""
        producers, self.producers, self.producer = self.producers, [], None
        self.open = _Open()
        for round_ in self.rounds:
            for future in round_.futures:
                future.cancel()
        self.rounds.clear()
        self.inflight_bytes = 0
        for producer in producers:
            try:
                await asyncio.wait_for(producer.stop(), timeout=self.request_timeout_s)
            except Exception:
                pass

    @property
    def pending_bytes(self) -> int:
        return self.inflight_bytes + self.open.size

    def full(self, limit: int) -> bool:
        """No more records for now: `limit` bytes unacknowledged, or enough rounds queued that a new
        one would only wait behind them (one batch per partition is in flight at a time)."""
        return self.inflight_bytes + self.open.size >= limit or len(self.rounds) >= MAX_ROUNDS

    def _partition(self, key: bytes) -> int:
        part = self._part_cache.get(key)
        if part is None:
            part = self.partitioner(key, self.partitions, self.partitions)
            if len(self._part_cache) < 10_000:
                self._part_cache[key] = part
        return part

    def add(self, key: bytes, value: bytes, tail: Any, gen: int, end: int) -> None:
        self.add_many(key, [value], tail, gen, end, len(value) + len(key) + OVERHEAD)

    def add_many(self, key: bytes, values: list[bytes], tail: Any, gen: int, end: int, size: int) -> None:
        """`add` for records of one key and one file in a row (`end`: after the last of them, `size`: as
        `add` counts it): the plain-shipping hot path."""
        assert self.producer is not None
        current = self.open
        if not current.records:
            current.since = time.monotonic()
        part = self._partition(key)
        batch = current.batches.get(part)
        if batch is None:
            batch = current.batches[part] = self.producer.create_batch()
        append = batch.append
        for value in values:
            if append(key=key, value=value, timestamp=None) is None:
                current.sealed.append((part, batch))
                batch = current.batches[part] = self.producer.create_batch()
                append = batch.append
                if append(key=key, value=value, timestamp=None) is None:
                    raise ValueError(f"a record of {len(value)} bytes is larger than a Kafka batch")
        current.marks[tail] = (gen, end)
        current.records += len(values)
        current.size += size

    def room(self, limit: int) -> int:
        """Bytes that may still be added before `full(limit)`."""
        return 0 if len(self.rounds) >= MAX_ROUNDS else limit - self.inflight_bytes - self.open.size

    def due(self) -> bool:
        current = self.open
        return bool(current.records) and (bool(current.sealed) or time.monotonic() - current.since >= self.linger_s)

    async def send(self) -> None:
        """Seal the open round and hand its batches to the producer (waits while Kafka is slow)."""
        current = self.open
        if not current.records:
            return
        assert self.producer is not None
        self.open = _Open()
        futures: list[asyncio.Future[Any]] = []
        self._turn = (self._turn + 1) % len(self.producers)
        producer = self.producers[self._turn]
        for part, batch in [*current.sealed, *current.batches.items()]:
            # a task: the next round is read and encoded while this one waits for its partition's
            # previous batch to drain (aiokafka sends one batch per partition at a time)
            task = asyncio.ensure_future(self._deliver(producer, batch, part))
            task.add_done_callback(_retrieved)  # a dropped round's failure is handled by the rewind
            futures.append(task)
        self.rounds.append(Round(futures, current.marks, current.records, current.size))
        self.inflight_bytes += current.size

    async def _deliver(self, producer: AIOKafkaProducer, batch: Any, part: int) -> Any:
        return await (await producer.send_batch(batch, self.topic, partition=part))

    def settled(self) -> list[Round]:
        """Rounds acknowledged in full, in order; raises the first failure (nothing after it counts),
        once the rounds before it were returned: their marks must reach the files before the rewind."""
        out: list[Round] = []
        while self.rounds and all(f.done() for f in self.rounds[0].futures):
            head = self.rounds[0]
            for f in head.futures:
                exc = f.exception() if not f.cancelled() else RuntimeError("delivery cancelled")
                if exc is not None:
                    if out:
                        return out  # the next call raises
                    raise exc
            self.rounds.popleft()
            self.inflight_bytes -= head.size
            self.delivered += head.records
            out.append(head)
        return out

    async def wait_oldest(self, within_s: float) -> None:
        """Until the oldest round finished, or `within_s`."""
        if self.rounds:
            await asyncio.wait(self.rounds[0].futures, timeout=within_s, return_when=asyncio.ALL_COMPLETED)
