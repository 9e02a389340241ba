"""Hostile load at a running `collector otlp` (real uvicorn + grpcio, real broker): every crafted body
of issue 23 and the fuzzers' output are sent, several at once, over HTTP and gRPC, while a
well-behaved exporter keeps sending. Throughout: the process's RSS stays within the bound
docs/otel.md gives for these settings, `/health` answers within a second, and every record of the
well-behaved client is in Kafka exactly once."""

from __future__ import annotations

import asyncio
import gzip
import random
import signal
import time
import warnings
from pathlib import Path
from typing import Any

import grpc
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from hypothesis.errors import HypothesisWarning, NonInteractiveExampleWarning
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from tests.ingest.conftest import free_port
from tests.otlp.conftest import API_TOKEN, OTHER_TOKEN, PROTOBUF, logs_request, record, serve_otlp
from tests.otlp.test_app import deep_kvlist_attribute
from tests.otlp.test_bound import _group, _ld, records_behind
from tests.otlp.test_fuzz import _big_as_text, logs_body, metrics_body
from tests.otlp.test_sdk_clients import until_up

pytestmark = [pytest.mark.stack, pytest.mark.slow]

MAX_BODY = 4 << 20
IN_FLIGHT = 32 << 20
# docs/otel.md, "Memory and CPU": the process at rest (~90 MB) + the in-flight bound + two bodies
# parsed at once (~30 x the body limit each, for pathological bodies of tiny entries) + gRPC calls
RSS_BOUND = 90 * 2**20 + IN_FLIGHT + 2 * 30 * MAX_BODY + 4 * MAX_BODY
GOOD_BATCHES, GOOD_SIZE = 40, 50


def crafted() -> list[tuple[str, bytes, dict[str, str]]]:
    """(path, body, extra headers): the bodies of issue 23, each at its worst under these limits."""
    json = {"Content-Type": "application/json"}
    bools = AnyValue()
    bools.array_value.values.extend([AnyValue(bool_value=True)] * 1_000_000)
    heavy = record("bools")
    heavy.attributes.add(key="flags", value=bools)
    many = logs_request([record(f"m{i}" + "x" * 350, k=i) for i in range(9_000)]).SerializeToString()
    bad = record("deep").SerializeToString() + deep_kvlist_attribute(40)
    deep = _ld(0x0A, _ld(0x12, _ld(0x12, bad) + _ld(0x12, record("ok").SerializeToString())))
    return [
        ("/v1/logs", records_behind(_group(15), 100_000), {}),  # item 1: records behind a group
        ("/v1/logs", gzip.compress(b"") * (3_200_000 // 20), {"Content-Encoding": "gzip"}),  # item 3
        ("/v1/logs", logs_request([LogRecord()] * 2000, **{f"a{i}": "v" * 1024 for i in range(127)})
         .SerializeToString(), {}),  # item 2: resource attributes x records
        ("/v1/logs", logs_request([record(f"r{i}") for i in range(200)], big=["x" * 100] * 8000)
         .SerializeToString(), {}),  # item 2: an 800 KB array attribute x 200 records
        ("/v1/logs", logs_request([heavy]).SerializeToString(), {}),  # item 4: a million booleans
        ("/v1/logs", many[:MAX_BODY] if len(many) > MAX_BODY else many, {}),  # item 4: valid, near the limit
        ("/v1/logs", b'{"resourceLogs":[' + b"{}," * (MAX_BODY // 3 - 10) + b"{}]}", json),  # item 4: JSON count
        ("/v1/logs", deep, {}),  # item 5: one record nested too deeply
        ("/v1/logs", orjson.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": [
            {"traceId": "zz", "body": {"stringValue": "x"}}, {"body": {"stringValue": "y"}}]}]}]}), json),
        ("/v1/logs", logs_request([LogRecord(time_unix_nano=2**64 - 1, body=AnyValue(string_value="t"))])
         .SerializeToString(), {}),  # item 9
    ]


def fuzzed(seed: int, count: int) -> list[tuple[str, bytes, dict[str, str]]]:
    """The property-based fuzzers' bodies (hypothesis examples of tests/otlp/test_fuzz.py) and byte
    mutations of valid protobuf bodies."""
    rng = random.Random(seed)
    out: list[tuple[str, bytes, dict[str, str]]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonInteractiveExampleWarning)
        warnings.simplefilter("ignore", HypothesisWarning)
        for i in range(count):
            path, strategy = ("/v1/logs", logs_body) if i % 2 else ("/v1/metrics", metrics_body)
            out.append((path, orjson.dumps(_big_as_text(strategy.example())), {"Content-Type": "application/json"}))
    base = logs_request([record(f"f{i}", k=i, nested={"a": [1, 2.5, "x"]}) for i in range(20)]).SerializeToString()
    for _ in range(count):
        body = bytearray(base)
        for _ in range(rng.randint(1, 20)):
            body[rng.randrange(len(body))] = rng.randrange(256)
        cut = rng.randrange(len(body) + 1)
        out.append(("/v1/logs", bytes(body[:cut]) if rng.random() < 0.3 else bytes(body), {}))
    return out


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def test_hostile_load_leaves_health_memory_and_a_good_client_intact(kafka_bootstrap: str, unique: str,
                                                                        tmp_path: Path) -> None:
    port, grpc_port = free_port(), free_port()
    server = serve_otlp(kafka_bootstrap, unique, port, tmp_path / "otlp.log", INGEST_OTLP_GRPC_PORT=str(grpc_port),
                        INGEST_MAX_BODY_BYTES=str(MAX_BODY), INGEST_MAX_IN_FLIGHT_BYTES=str(IN_FLIGHT),
                        INGEST_KAFKA_TIMEOUT_S="10", INGEST_TOKENS=orjson.dumps({
                            "api-service": _hash(API_TOKEN), "auth-service": _hash(OTHER_TOKEN)}).decode())
    base = f"http://127.0.0.1:{port}"
    sent: list[str] = []
    health_waits: list[float] = []
    rss: list[int] = []
    hostile_statuses: list[int] = []
    done = asyncio.Event()
    try:
        await until_up(port)
        bodies = crafted() + fuzzed(23, 60)

        async def good_client(client: httpx.AsyncClient) -> None:
            headers = {"Authorization": f"Bearer {OTHER_TOKEN}", "Content-Type": PROTOBUF}
            for batch in range(GOOD_BATCHES):
                ids = [f"good-{batch}-{i}" for i in range(GOOD_SIZE)]
                body = logs_request([record("good", id=i) for i in ids], "auth-service").SerializeToString()
                while True:  # as an OTLP exporter: 503 is retried after Retry-After, nothing else is
                    resp = await client.post("/v1/logs", content=body, headers=headers)
                    if resp.status_code != 503:
                        break
                    await asyncio.sleep(min(1.0, float(resp.headers.get("retry-after", "1"))))
                assert resp.status_code == 200, resp.content[:300]
                sent.extend(ids)
            done.set()

        async def hostile(client: httpx.AsyncClient, worker: int) -> None:
            i = worker
            while not done.is_set():
                path, body, extra = bodies[i % len(bodies)]
                i += 4
                headers = {"Authorization": f"Bearer {API_TOKEN}", "Content-Type": PROTOBUF, **extra}
                resp = await client.post(path, content=body, headers=headers)
                hostile_statuses.append(resp.status_code)
                assert resp.status_code in (200, 400, 403, 413, 503), (resp.status_code, resp.content[:300])

        async def hostile_grpc() -> None:
            method = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
            grpc_bodies = [b for p, b, e in bodies if p == "/v1/logs" and not e]
            async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}", options=[
                    ("grpc.max_send_message_length", 64 << 20)]) as channel:
                call = channel.unary_unary(method)
                i = 0
                while not done.is_set():
                    try:
                        await call(grpc_bodies[i % len(grpc_bodies)], timeout=60,
                                   metadata=(("authorization", f"Bearer {API_TOKEN}"),))
                    except grpc.aio.AioRpcError as exc:
                        assert exc.code() != grpc.StatusCode.INTERNAL, exc
                    i += 1

        async def watch(client: httpx.AsyncClient) -> None:
            pid = server.pid
            while not done.is_set():
                rss.append(rss_bytes(pid))
                t0 = time.monotonic()
                assert (await client.get("/health")).status_code == 200
                health_waits.append(time.monotonic() - t0)
                await asyncio.sleep(0.1)

        async with httpx.AsyncClient(base_url=base, timeout=120) as good, \
                httpx.AsyncClient(base_url=base, timeout=120) as bad, \
                httpx.AsyncClient(base_url=base, timeout=5) as monitor:
            tasks = [good_client(good), watch(monitor), hostile_grpc(), *(hostile(bad, w) for w in range(4))]
            await asyncio.gather(*tasks)
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(30) in (0, -signal.SIGTERM)
    assert len(sent) == GOOD_BATCHES * GOOD_SIZE
    assert len(hostile_statuses) >= len(crafted()), "the hostile senders hardly sent anything"
    assert max(health_waits) < 1.0, sorted(health_waits)[-5:]
    assert max(rss) < RSS_BOUND, (max(rss) >> 20, RSS_BOUND >> 20)
    got = await good_records(kafka_bootstrap, f"test-{unique}-logs", set(sent))
    assert sorted(got) == sorted(sent)  # every one, exactly once
    print(f"hostile requests {len(hostile_statuses)}, health max {max(health_waits):.3f}s, "
          f"RSS max {max(rss) >> 20} MiB (bound {RSS_BOUND >> 20} MiB)")


def _hash(token: str) -> str:
    from collector.ingest.auth import token_hash

    return token_hash(token)


async def good_records(bootstrap: str, topic: str, wanted: set[str], quiet_s: float = 3.0) -> list[str]:
    """The well-behaved client's ids in the topic (the hostile records are there too): read until all
    are there, then until nothing more arrives for `quiet_s` (a duplicate must get its chance)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None, max_partition_fetch_bytes=8 << 20,
                                fetch_max_bytes=64 << 20)
    await consumer.start()
    found: list[str] = []
    try:
        last_new = time.monotonic()
        while time.monotonic() - last_new < quiet_s or not wanted <= set(found):
            batch = await consumer.getmany(timeout_ms=500)
            for msgs in batch.values():
                for msg in msgs:
                    doc: dict[str, Any] = orjson.loads(msg.value)
                    if doc["service"]["name"] == "auth-service":
                        found.append(doc["labels"]["id"])
                if msgs:
                    last_new = time.monotonic()
            assert time.monotonic() - last_new < 60, "no progress reading the topic"
    finally:
        await consumer.stop()
    return found

