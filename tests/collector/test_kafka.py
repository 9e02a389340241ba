"""The Kafka output against real brokers: the shared one for delivery, a private one for the
outage test (nothing listens on its port, then it starts there; the shared stack is untouched)."""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import replace
from typing import Any

import orjson
import pytest

import collector
from collector.outputs import fit
from stack import localstack
from stack.localstack import Config
from tests.collector.conftest import assert_ecs
from tests.collector.test_outputs import wait_for
from tests.kafka_io import consume


async def test_records_arrive_keyed_by_service(kafka_bootstrap: str, unique: str):
    logs, metrics = f"test-{unique}-logs", f"test-{unique}-metrics"
    collector.configure(service="api-service", outputs="kafka", kafka_bootstrap_servers=kafka_bootstrap,
                        kafka_topic_logs=logs, kafka_topic_metrics=metrics, kafka_acks="all",
                        metrics_interval=0, capture_stdlib=False)
    out = collector.outputs()["kafka"]
    try:
        log = collector.get_logger("x")
        for i in range(20):
            log.info("event", i=i)
        collector.counter("test.kafka.hits").inc(3)
        collector.emit_metrics()
        wait_for(lambda: out.delivered >= 21, timeout=30)
    finally:
        collector.shutdown()
    got = await consume(kafka_bootstrap, logs, 20, wait=30)
    assert len(got) == 20
    assert {m.key for m in got} == {b"api-service"}
    assert [assert_ecs(m.value)["labels"]["i"] for m in got] == list(range(20))
    docs = await consume(kafka_bootstrap, metrics, 1, wait=30)
    names = [orjson.loads(m.value)["metric"]["name"] for m in docs]
    assert "test.kafka.hits" in names and {m.key for m in docs} == {b"api-service"}
    assert (out.emitted, out.delivered, out.dropped) == (20 + len(docs), 20 + len(docs), 0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
async def test_dead_broker_counts_drops_then_delivery_resumes(tmp_path: Any, unique: str):
    base = Config.from_env()
    cfg = replace(base, state=tmp_path / "stack", kafka_port=_free_port(), kafka_controller_port=_free_port(),
                  search_port=_free_port(), search_transport_port=_free_port())
    topic = f"test-{unique}-logs"
    collector.configure(service="api-service", outputs="kafka", kafka_bootstrap_servers=cfg.bootstrap,
                        kafka_topic_logs=topic, queue_size=20, backoff_initial=0.1, backoff_max=1.0,
                        metrics_interval=0, capture_stdlib=False)
    out = collector.outputs()["kafka"]
    try:
        log = collector.get_logger("x")
        log.info("held", i=0)
        wait_for(lambda: out.failures >= 1, timeout=20)  # the worker holds `held` for retry
        slowest = 0.0
        for i in range(1, 51):
            t0 = time.perf_counter()
            log.info("queued", i=i)
            slowest = max(slowest, time.perf_counter() - t0)
        assert slowest < 0.05  # the app is unaffected: no call waits on the broker
        assert (out.emitted, out.delivered, out.dropped, out.pending()) == (51, 0, 30, 20)
        try:
            await asyncio.to_thread(localstack.up, cfg, ("kafka",))
            wait_for(lambda: out.delivered == 22, timeout=60)  # held + notice + 20 queued
            got = await consume(cfg.bootstrap, topic, 22, wait=30)
        finally:
            await asyncio.to_thread(localstack.down, cfg, ("kafka",))
    finally:
        collector.shutdown(1.0)
    recs = [orjson.loads(m.value) for m in got]
    assert len(recs) == 22 and {m.key for m in got} == {b"api-service"}
    notices = [r for r in recs if r["labels"].get("output") == "kafka"]
    assert [n["labels"]["dropped"] for n in notices] == [30]
    assert sorted(r["labels"]["i"] for r in recs if "i" in r["labels"]) == list(range(21))
    assert (out.emitted, out.delivered, out.dropped) == (52, 22, 30)


def test_shutdown_with_dead_broker_counts_everything_as_dropped():
    collector.configure(service="api-service", outputs="kafka", kafka_bootstrap_servers=f"127.0.0.1:{_free_port()}",
                        queue_size=100, backoff_initial=0.05, backoff_max=0.2, metrics_interval=0,
                        capture_stdlib=False, flush_timeout=2.0)
    out = collector.outputs()["kafka"]
    log = collector.get_logger("x")
    log.info("held")
    wait_for(lambda: out.failures >= 1)
    for i in range(300):
        log.info("r", i=i)
    started = time.monotonic()
    collector.shutdown()
    assert time.monotonic() - started < 3.0  # the flush deadline holds
    assert (out.emitted, out.delivered, out.dropped, out.pending()) == (301, 0, 301, 0)


async def test_an_oversized_record_is_cut_to_fit_and_the_rest_keeps_flowing(kafka_bootstrap: str, unique: str):
    # 3 MB: over aiokafka's max_request_size (1 MiB), though the local broker would take 10 MB
    topic = f"test-{unique}-logs"
    collector.configure(service="api-service", outputs="kafka", kafka_bootstrap_servers=kafka_bootstrap,
                        kafka_topic_logs=topic, kafka_acks="all", metrics_interval=0, capture_stdlib=False,
                        backoff_initial=0.05, backoff_max=0.2)
    out = collector.outputs()["kafka"]
    try:
        log = collector.get_logger("x")
        for i in range(100):
            log.info("before", i=i)
        log.error("big " + "x" * 3_000_000, i=100)
        for i in range(101, 201):
            log.info("between", i=i)
        log.info("too many fields to cut", **{f"k{n}": n for n in range(150_000)})  # no long string to cut
        for i in range(201, 301):
            log.info("after", i=i)
        wait_for(lambda: out.delivered + out.dropped == out.emitted == 302, timeout=60)
    finally:
        collector.shutdown()
    assert (out.delivered, out.dropped, out.rejected, out.truncated) == (301, 1, 1, 1)
    got = await consume(kafka_bootstrap, topic, 301, wait=30)
    recs = [orjson.loads(m.value) for m in got]
    assert sorted(r["labels"]["i"] for r in recs) == list(range(301))  # each once, the big one included
    big = next(r for r in recs if r["labels"]["i"] == 100)
    assert big["message"].startswith("big xxx") and big["message"].endswith(fit.MARK)
    assert big["labels"]["truncated_bytes"] > 3_000_000 and max(len(m.value) for m in got) < 1 << 20
    assert "max_request_size" in collector.stats()["outputs"]["kafka"]["last_error"]


async def test_a_refused_record_is_neither_resent_forever_nor_copies_its_neighbours(kafka_bootstrap: str,
                                                                                   unique: str):
    """Issue 20 item 9: the metrics topic takes at most 300 bytes a message, so the broker refuses
    every metric document for good while the log records beside them are written. Each log record
    is in Kafka once (no resend of what was acknowledged), the metric documents are counted as
    rejected, and nothing waits behind them."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    logs, metrics = f"test-{unique}-logs", f"test-{unique}-metrics"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(logs, 1, 1),
                                   NewTopic(metrics, 1, 1, topic_configs={"max.message.bytes": "300"})])
    finally:
        await admin.close()
    collector.configure(service="api-service", outputs="kafka", kafka_bootstrap_servers=kafka_bootstrap,
                        kafka_topic_logs=logs, kafka_topic_metrics=metrics, metrics_interval=0,
                        capture_stdlib=False, backoff_initial=0.05, backoff_max=0.2)
    out = collector.outputs()["kafka"]
    try:
        log = collector.get_logger("x")
        for round_ in range(5):
            for i in range(20):
                log.info("event", i=round_ * 20 + i)
            collector.counter("test.kafka.hits").inc()
            collector.emit_metrics()
        wait_for(lambda: out.delivered + out.rejected == out.emitted, timeout=30)
    finally:
        collector.shutdown()
    got = await consume(kafka_bootstrap, logs, 101, wait=10)
    assert sorted(orjson.loads(m.value)["labels"]["i"] for m in got) == list(range(100))  # each once
    assert out.delivered == 100 and out.rejected == out.emitted - 100 > 0
    assert await consume(kafka_bootstrap, metrics, 1, wait=2) == []


def test_kafka_refusing_access_is_said_once_and_counted(monkeypatch: pytest.MonkeyPatch,
                                                         capfd: pytest.CaptureFixture[str]):
    # a unit: no ACL-enforcing broker here, so the producer start fails as aiokafka's does on a refused topic
    from aiokafka.errors import TopicAuthorizationFailedError

    from collector.outputs.kafka import KafkaOutput

    async def refused(self: KafkaOutput) -> Any:
        raise TopicAuthorizationFailedError("not authorized for topic elk-logs")

    monkeypatch.setattr(KafkaOutput, "_connect", refused)
    collector.configure(service="api-service", outputs="kafka", kafka_bootstrap_servers="127.0.0.1:1",
                        backoff_initial=0.01, backoff_max=0.02, metrics_interval=0, capture_stdlib=False)
    out = collector.outputs()["kafka"]
    try:
        collector.get_logger("x").info("held")
        wait_for(lambda: out.auth_failures >= 3)
        stats = collector.stats()["outputs"]["kafka"]
        assert stats["delivered"] == stats["dropped"] == 0 and "TopicAuthorizationFailedError" in stats["last_error"]
    finally:
        collector.shutdown(0.5)
    said = [line for line in capfd.readouterr().err.splitlines() if "output kafka" in line]
    assert len(said) == 1 and "Kafka refused access" in said[0]
