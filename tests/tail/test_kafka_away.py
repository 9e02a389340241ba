"""Kafka away, seen from the tailer's sink: the intakes' rule (collector.kafka_link). No producer
is made until a bootstrap server answers with a real peer (a self-connection is not the broker),
tries are refused at once until a wait that doubles per failed try has passed, and the outage is
said once when it starts and once when it ends. The last test stops and restarts a broker."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest

from collector import kafka_link
from collector.tail import service as service_module
from collector.tail import sink as sink_module
from collector.tail.sink import KafkaAway, KafkaSink
from stack.localstack import Config, down, up
from tests.kafka_io import self_connected
from tests.tail.conftest import running, settings, until


class Said:
    """Stands in for the sink's logger: what it said, in order."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def warning(self, msg: str, **kw: Any) -> None:
        self.lines.append(msg)

    info = error = warning


@pytest.fixture
def said(monkeypatch: pytest.MonkeyPatch) -> Said:
    said = Said()
    monkeypatch.setattr(sink_module, "log", said)
    return said


def _free_port() -> int:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        return int(free.getsockname()[1])


def test_the_wait_doubles_up_to_its_cap() -> None:
    waits = [0.5]
    for _ in range(9):
        waits.append(kafka_link.next_wait(waits[-1], 0.5))
    assert waits == [0.5, 1, 2, 4, 8, 16, 30, 30, 30, 30]
    assert kafka_link.next_wait(60, 60) == 60  # a first wait longer than the cap stays
    assert kafka_link.next_wait(4, 0.5, cap=5) == 5  # a shorter cap (the tailer's)


async def test_a_self_connection_is_not_taken_for_the_broker(monkeypatch: pytest.MonkeyPatch, said: Said) -> None:
    made: list[object] = []
    real_open = asyncio.open_connection

    async def open_itself(host: str, port: int, **kw: object) -> object:
        return await real_open(sock=self_connected())

    sink = KafkaSink(f"127.0.0.1:{_free_port()}", "t", request_timeout_s=2)
    monkeypatch.setattr(sink, "_new_producer", lambda: made.append(1))
    monkeypatch.setattr(kafka_link.asyncio, "open_connection", open_itself)
    with pytest.raises(KafkaAway):
        await sink.start()
    assert sink.away is not None and "itself" in sink.away and not made and sink.producer is None


async def test_while_kafka_is_away_no_producer_is_made_and_tries_back_off(monkeypatch: pytest.MonkeyPatch,
                                                                         said: Said) -> None:
    clock = [1000.0]
    tries: list[str] = []
    real_listens = sink_module.broker_listens

    async def listens(bootstrap: str, timeout_s: float) -> str | None:
        tries.append(bootstrap)
        return await real_listens(bootstrap, timeout_s)

    made: list[object] = []
    sink = KafkaSink(f"127.0.0.1:{_free_port()}", "t", request_timeout_s=2, clock=lambda: clock[0])
    monkeypatch.setattr(sink_module, "broker_listens", listens)
    monkeypatch.setattr(sink, "_new_producer", lambda: made.append(1))
    waits = []
    for _ in range(8):
        with pytest.raises(KafkaAway):
            await sink.start()  # a try: the broker does not listen
        waits.append(sink.retry_at - clock[0])
        for _ in range(20):  # the tailer's loop asking again and again before the wait is over
            with pytest.raises(KafkaAway):
                await sink.start()
        clock[0] = sink.retry_at
    assert waits == [0.5, 1, 2, 4, 5, 5, 5, 5]
    assert len(tries) == 8 and not made  # one connection attempt per wait, no producer
    assert said.lines == ["kafka unavailable; reading paused until it is back"]


async def test_the_tailer_tries_by_the_sinks_rule_and_says_it_once(monkeypatch: pytest.MonkeyPatch, said: Said,
                                                                 tmp_path: Any) -> None:
    """A whole tailer whose broker does not listen, for 4 s: tries at 0, 0.5, 1.5 and 3.5 s (the
    sink's doubling wait, not the loop's own), one line for the outage, none per try."""
    monkeypatch.setattr(service_module, "log", said)
    tries: list[float] = []
    real_listens = sink_module.broker_listens

    async def listens(bootstrap: str, timeout_s: float) -> str | None:
        tries.append(time.monotonic())
        return await real_listens(bootstrap, timeout_s)

    monkeypatch.setattr(sink_module, "broker_listens", listens)
    (tmp_path / "app.log").write_text("one line\n")
    cfg = settings(f"127.0.0.1:{_free_port()}", "t", tmp_path, inputs=[{"paths": [str(tmp_path / "app.log")],
                                                                       "format": "plain"}])
    async with running(cfg) as tailer:
        await until(lambda: bool(tries), "the first try")
        await asyncio.sleep(4 - (time.monotonic() - tries[0]))
        assert tailer.sink.producer is None
    assert 3 <= len(tries) <= 5, [round(t - tries[0], 2) for t in tries]
    assert [line for line in said.lines if "kafka" in line] == ["kafka unavailable; reading paused until it is back"]


@pytest.mark.slow  # a broker stop and start: 30-90 s on a loaded machine
async def test_kafka_stopped_and_back_is_said_once_each(kafka_bootstrap: str, topic: str, stack_config: Config,
                                                        said: Said) -> None:
    """A real broker stopped by pid and started again: while it is away the tailer's loop asks the
    sink to start every 50 ms; not one producer is made and one line says it; once it is back the
    sink starts, says so once, and delivers."""
    made = [0]
    sink = KafkaSink(kafka_bootstrap, topic, request_timeout_s=3)
    new_producer = sink._new_producer

    def counted() -> Any:
        made[0] += 1
        return new_producer()

    sink._new_producer = counted  # type: ignore[method-assign]
    await sink.start()
    await sink.stop()
    assert made[0] == sink.connections
    await asyncio.to_thread(down, stack_config, ("kafka",))
    try:
        refused = 0
        t0 = time.monotonic()
        while time.monotonic() - t0 < 6:
            with pytest.raises(KafkaAway):
                await sink.start()
            refused += 1
            await asyncio.sleep(0.05)
        assert made[0] == sink.connections and refused > 50
        assert sink.wait_s >= 2  # 0.5, 1, 2, ...: a handful of connection attempts in 6 s
    finally:
        await asyncio.to_thread(up, stack_config, ("kafka",))
    deadline = time.monotonic() + 90
    while True:
        try:
            await sink.start()
            break
        except KafkaAway:
            assert time.monotonic() < deadline, "the broker did not come back"
            await asyncio.sleep(0.2)
        except Exception:  # the broker answers but is not ready yet (metadata, leader election)
            assert time.monotonic() < deadline, "the broker did not come back"
            await asyncio.sleep(0.5)
    assert said.lines == ["kafka unavailable; reading paused until it is back", "kafka available again"]
    assert sink.away is None and sink.producer is not None
    await sink.stop()


async def test_rounds_acknowledged_before_a_failed_one_are_settled_first() -> None:
    """A failed round after acknowledged ones: the acknowledged ones are returned (their marks move
    the files on) before the failure is raised; raising at once dropped them, so the rewind re-sent
    lines Kafka already had (and counted them twice)."""
    loop = asyncio.get_running_loop()
    sink = KafkaSink("127.0.0.1:1", "t")

    def round_(error: Exception | None, tail: str) -> sink_module.Round:
        future: asyncio.Future[Any] = loop.create_future()
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
        return sink_module.Round([future], {tail: (0, 100)}, records=3, size=300)

    sink.rounds.extend([round_(None, "a"), round_(None, "b"), round_(RuntimeError("broker gone"), "a")])
    sink.inflight_bytes = 900
    done = sink.settled()
    assert [r.marks for r in done] == [{"a": (0, 100)}, {"b": (0, 100)}]
    assert sink.delivered == 6 and sink.inflight_bytes == 300
    with pytest.raises(RuntimeError, match="broker gone"):
        sink.settled()
    assert sink.delivered == 6
