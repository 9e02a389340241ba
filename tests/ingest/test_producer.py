"""The API's batch producer against the real broker: records split over as many batches as their
size needs, every one delivered once, in order, on the partition `send()` would have picked."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.producer.message_accumulator import BatchBuilder

from collector.ingest.producer import BatchSender, _fill
from tests.kafka_io import consume

pytestmark = pytest.mark.stack


def test_fill_stops_at_a_full_batch_and_closes_it() -> None:
    builder = BatchBuilder(2000, 0)
    values = [bytes([65 + i]) * 300 for i in range(20)]
    taken = _fill(builder, b"k", values, 0)
    assert 0 < taken < 20
    assert builder.record_count() == taken and builder.closed()
    rest = BatchBuilder(2000, 0)
    assert _fill(rest, b"k", values, taken) == taken  # same-sized records: same count per batch


def test_a_record_over_the_batch_size_goes_alone() -> None:
    # as aiokafka does: a fresh batch takes its first record whatever its size (the API's record
    # limit, under the broker's, is what refuses an oversized one)
    values = [b"x" * 5000, b"y" * 10]
    assert _fill(BatchBuilder(1000, 0), b"k", values, 0) == 1
    assert _fill(BatchBuilder(1000, 0), b"k", values, 1) == 1


async def test_many_batches_deliver_every_record_once_in_order(kafka_bootstrap: str, unique: str) -> None:
    topic = f"batches-{unique}"
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, max_batch_size=16384, acks="all",
                                enable_idempotence=False)
    await producer.start()
    try:
        first = await (await producer.send(topic, b"first", key=b"api-service"))
        records = [(b"api-service", f"{i:06d}".encode() * 100) for i in range(1000)]  # 600 KB: ~40 batches
        futures = await BatchSender(producer).send(topic, records)
        assert len(futures) > 30
        metas = await asyncio.gather(*futures)
        assert {m.partition for m in metas} == {first.partition}
    finally:
        await producer.stop()
    got = await consume(kafka_bootstrap, topic, 1001)
    assert [m.value for m in got] == [b"first", *(v for _, v in records)]
    assert {m.key for m in got} == {b"api-service"}
