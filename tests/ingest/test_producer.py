"""The API's batch producer against the real broker: records split over as many batches as their
size needs, every one delivered once, in order, on the partition `send()` would have picked."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.producer.message_accumulator import BatchBuilder

from collector import kafka_link
from collector.ingest import producer as producer_module
from collector.ingest.config import IngestSettings
from collector.ingest.producer import BatchSender, KafkaGate, Unavailable, _fill
from tests.kafka_io import consume, self_connected

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


async def test_a_self_connection_is_not_taken_for_the_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[object] = []
    real_open = asyncio.open_connection

    async def open_itself(host: str, port: int, **kw: object) -> object:
        return await real_open(sock=self_connected())

    gate = KafkaGate(IngestSettings(kafka_bootstrap_servers="127.0.0.1:40000", tokens={}, kafka_timeout_s=2))
    monkeypatch.setattr(gate, "_new_producer", lambda: made.append(1))
    monkeypatch.setattr(producer_module.asyncio, "open_connection", open_itself)
    with pytest.raises(Unavailable):
        await gate._ensure()
    assert gate.state == "down" and "itself" in gate.last_error and not made


async def test_while_kafka_is_down_no_producer_reconnects_and_probes_back_off(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A stopped broker (a port nothing listens on): one warning for the outage, no producer kept
    reconnecting (aiokafka logs an error per attempt), each failed probe waits twice as long."""
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    gate = KafkaGate(IngestSettings(kafka_bootstrap_servers=f"127.0.0.1:{port}", tokens={}, kafka_timeout_s=2,
                                    retry_after_s=1))
    clock = [1000.0]
    monkeypatch.setattr(producer_module.time, "monotonic", lambda: clock[0])
    caplog.set_level(logging.INFO)
    await gate.start()
    assert gate.state == "down" and gate._producer is None
    waits = []
    for _ in range(7):
        waits.append(gate._reopen_at - clock[0])
        with pytest.raises(Unavailable):
            await gate.produce("t", [(b"k", b"v")])  # before the probe time: refused at once
        clock[0] = gate._reopen_at
        with pytest.raises(Unavailable):
            await gate.produce("t", [(b"k", b"v")])  # the probe, failing
        assert gate._producer is None
    assert waits == [1, 2, 4, 8, 16, 30, 30]
    unavailable = [r for r in caplog.records if "kafka unavailable" in r.getMessage()]
    assert len(unavailable) == 1
    assert not [r for r in caplog.records if r.name.startswith("aiokafka")]
    await gate.stop()


def test_aiokafka_repeats_pass_once_per_window() -> None:
    clock = [0.0]
    once = kafka_link.OncePerWindow(60, clock=lambda: clock[0])

    def rec(msg: str, level: int = logging.ERROR) -> logging.LogRecord:
        return logging.LogRecord("aiokafka", level, __file__, 1, msg, (), None)

    assert once.filter(rec("Unable connect to node with id %s: %s"))
    assert not any(once.filter(rec("Unable connect to node with id %s: %s")) for _ in range(1000))
    assert once.filter(rec("Unable to update metadata from %s"))  # another message
    assert once.filter(rec("Initiating connection", logging.DEBUG))  # below warning: never held back
    clock[0] = 60.0
    assert once.filter(rec("Unable connect to node with id %s: %s"))
