"""One authenticated client must not take the OTLP intake down: what a request produces once mapped
is bounded and counted in the in-flight bound, oversize values are cut per record with a mark,
gRPC calls are capped, parsing runs off the event loop (/health answers meanwhile), and a known-down
Kafka is answered 503 before the body is parsed. In process, against the real broker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import orjson
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from collector.otlp.app import create_app
from tests.ingest.conftest import free_port
from tests.otlp.conftest import API_TOKEN, PROTOBUF, Otlp, logs_request, make_settings, record

pytestmark = pytest.mark.stack


@pytest.fixture
async def small(kafka_bootstrap: str, unique: str) -> AsyncIterator[Otlp]:
    """In-flight bound 4 MiB: a request may produce at most that once mapped."""
    settings = make_settings(kafka_bootstrap, unique, max_body_bytes=1 << 20, max_records=2000,
                             max_record_bytes=256 * 1024, max_in_flight_bytes=4 << 20)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://otlp", timeout=60) as client:
            otlp = Otlp(client, settings, kafka_bootstrap)
            otlp.app = app  # type: ignore[attr-defined]
            yield otlp


def _empty_records(count: int) -> list[LogRecord]:
    return [LogRecord(body=AnyValue(string_value="")) for _ in range(count)]


async def test_resource_attributes_copied_into_every_record_are_bounded(small: Otlp) -> None:
    """127 resource attributes of 1 KiB x 2,000 empty records: 260 MB for Kafka from a small body."""
    attrs = {f"attr{i}": "v" * 1024 for i in range(127)}
    body = logs_request(_empty_records(2000), **attrs).SerializeToString()
    assert len(body) < 200_000
    resp = await small.post("/v1/logs", body)
    assert resp.status_code == 413
    assert "once mapped" in Status.FromString(resp.content).message
    assert small.app.state.intake.busy.bytes == 0  # type: ignore[attr-defined]


async def test_an_oversize_array_attribute_is_cut_per_record_with_a_mark(small: Otlp) -> None:
    """An 800 KB array attribute x 200 records was 160 MB; each record now keeps its first 16 KiB."""
    huge = ["x" * 100] * 8000
    body = logs_request([record(f"m{i}", id=f"r{i}") for i in range(200)], big=huge).SerializeToString()
    resp = await small.post("/v1/logs", body)
    assert resp.status_code == 200, resp.content
    docs = await small.read(small.settings.topic_logs, 200)
    assert sorted(d["labels"]["id"] for d in docs) == sorted(f"r{i}" for i in range(200))
    for doc in docs:
        assert doc["labels"]["otel_cut_attributes"] == 1
        assert 0 < len(doc["extra"]["big"]) < 8000 and doc["extra"]["big"][0] == "x" * 100
        assert len(orjson.dumps(doc)) < 16 * 1024 + 4096


async def test_what_a_request_produces_counts_in_the_in_flight_bound(small: Otlp) -> None:
    """Mapped bytes are held like body bytes: with others holding most of the bound, 503."""
    attrs = {f"attr{i}": "v" * 1000 for i in range(12)}
    body = logs_request(_empty_records(250), **attrs).SerializeToString()  # ~3.1 MB once mapped
    busy = small.app.state.intake.busy  # type: ignore[attr-defined]
    other = busy.hold()
    other.grow(3 << 19)  # another request's 1.5 MiB
    try:
        resp = await small.post("/v1/logs", body)
        assert resp.status_code == 503 and resp.headers["retry-after"]
    finally:
        other.release()
    assert (await small.post("/v1/logs", body)).status_code == 200


async def test_a_known_down_kafka_is_503_before_the_body_is_parsed(small: Otlp) -> None:
    gate = small.app.state.intake.gate  # type: ignore[attr-defined]
    gate._trip("test: broker known to be down")
    resp = await small.post("/v1/logs", b"\x0a\xff\xff\xff not protobuf")  # a 400 if it were parsed
    assert resp.status_code == 503 and resp.headers["retry-after"]
    resp = await small.post("/v1/logs", b"{", content_type="application/json")
    assert resp.status_code == 503


def _heavy_body() -> bytes:
    """One attribute of 2.5 M booleans: seconds of parsing and mapping (and the record cut to 16 KiB)."""
    value = AnyValue()
    value.array_value.values.extend([AnyValue(bool_value=True)] * 2_500_000)
    return _with_attribute(value)


def _with_attribute(value: AnyValue) -> bytes:
    rec = record("heavy")
    rec.attributes.add(key="flags", value=value)
    return logs_request([rec]).SerializeToString()


async def test_health_answers_while_a_heavy_request_is_parsed(kafka_bootstrap: str, unique: str) -> None:
    settings = make_settings(kafka_bootstrap, unique, max_body_bytes=16 << 20, max_record_bytes=900_000)
    app = create_app(settings)
    body = _heavy_body()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://otlp", timeout=120) as client:
            heavy = asyncio.create_task(client.post(
                "/v1/logs", content=body, headers={"Authorization": f"Bearer {API_TOKEN}", "Content-Type": PROTOBUF}))
            waits = []
            while not heavy.done():
                t0 = time.monotonic()  # the pause counts too: in process, a blocked loop delays the asking
                await asyncio.sleep(0.05)
                assert (await client.get("/health")).status_code == 200
                waits.append(time.monotonic() - t0 - 0.05)
            assert (await heavy).status_code == 200
    assert waits and max(waits) < 1.0, waits


async def test_grpc_calls_are_capped(kafka_bootstrap: str, unique: str) -> None:
    port = free_port()
    settings = make_settings(kafka_bootstrap, unique, otlp_grpc_port=port, otlp_grpc_max_calls=2)
    app = create_app(settings)
    intake = app.state.intake
    release = asyncio.Event()
    both_in = asyncio.Event()
    entered = 0
    real_export = intake.export

    async def slow_export(*args: Any) -> Any:
        nonlocal entered
        entered += 1
        if entered == 2:
            both_in.set()
        await release.wait()
        return await real_export(*args)

    intake.export = slow_export
    method = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
    body = logs_request([record("capped")]).SerializeToString()
    meta = (("authorization", f"Bearer {API_TOKEN}"),)
    async with app.router.lifespan_context(app), grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(method)
        async def one() -> bytes:
            return await call(body, metadata=meta, timeout=30)

        held = [asyncio.create_task(one()) for _ in range(2)]
        await asyncio.wait_for(both_in.wait(), 30)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call(body, metadata=meta, timeout=30)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        release.set()
        assert all(isinstance(r, bytes) for r in await asyncio.gather(*held))
