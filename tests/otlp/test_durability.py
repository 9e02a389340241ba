"""Kafka stopped under a running `collector otlp` (real uvicorn, real broker): exporters get 503 with
Retry-After over HTTP and UNAVAILABLE over gRPC (both retryable in OTLP), nothing accepted is lost;
restarted: accepted again, and Kafka holds exactly the records answered OK, by id, with none of the
refused ones."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import grpc
import httpx
import orjson
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

from stack.localstack import Config, down, up
from tests.ingest.conftest import free_port
from tests.kafka_io import consume
from tests.otlp.conftest import API_TOKEN, PROTOBUF, logs_request, record, serve_otlp
from tests.otlp.test_sdk_clients import until_up

pytestmark = [pytest.mark.stack, pytest.mark.slow]


async def test_kafka_stopped_then_restarted(kafka_bootstrap: str, unique: str, stack_config: Config,
                                            tmp_path: Path) -> None:
    port, grpc_port = free_port(), free_port()
    log = tmp_path / "otlp.log"
    # Kafka's timeout well above the "refused at once" bound below, so a loaded machine cannot blur them
    server = serve_otlp(kafka_bootstrap, unique, port, log, INGEST_OTLP_GRPC_PORT=str(grpc_port),
                        INGEST_KAFKA_TIMEOUT_S="8")
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}")
    export = channel.unary_unary("/opentelemetry.proto.collector.logs.v1.LogsService/Export",
                                 request_serializer=ExportLogsServiceRequest.SerializeToString,
                                 response_deserializer=ExportLogsServiceResponse.FromString)
    accepted: list[str] = []
    refused: list[str] = []
    statuses: list[int] = []
    headers = {"Authorization": f"Bearer {API_TOKEN}", "Content-Type": PROTOBUF}
    batch_no = 0

    async def post(client: httpx.AsyncClient, size: int = 50) -> int:
        nonlocal batch_no
        ids = [f"b{batch_no}-{i}" for i in range(size)]
        batch_no += 1
        body = logs_request([record("durability", id=rid) for rid in ids]).SerializeToString()
        resp = await client.post("/v1/logs", content=body, headers=headers)
        statuses.append(resp.status_code)
        if resp.status_code == 200:
            accepted.extend(ids)
        else:
            assert resp.status_code == 503, resp.content
            assert Status.FromString(resp.content).code == 14  # UNAVAILABLE
            assert resp.headers["retry-after"].isdigit() and int(resp.headers["retry-after"]) >= 1
            refused.extend(ids)
        return resp.status_code

    async def post_grpc(size: int = 20) -> grpc.StatusCode:
        nonlocal batch_no
        ids = [f"g{batch_no}-{i}" for i in range(size)]
        batch_no += 1
        try:
            await export(logs_request([record("durability", id=rid) for rid in ids]),
                         metadata=(("authorization", f"Bearer {API_TOKEN}"),), timeout=30)
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc
            refused.extend(ids)
            return exc.code()
        accepted.extend(ids)
        return grpc.StatusCode.OK

    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            await until_up(port)
            for _ in range(6):
                assert await post(client) == 200
            assert await post_grpc() == grpc.StatusCode.OK
            await asyncio.to_thread(down, stack_config, ("kafka",))
            try:
                for _ in range(5):
                    await asyncio.gather(*(post(client) for _ in range(3)))
                assert statuses.count(503) >= 12
                assert (await client.get("/health")).status_code == 503
                t0 = time.monotonic()
                assert await post(client) == 503 and time.monotonic() - t0 < 6  # refused at once, no Kafka wait
                assert await post_grpc() == grpc.StatusCode.UNAVAILABLE
            finally:
                await asyncio.to_thread(up, stack_config, ("kafka",))
            deadline = time.monotonic() + 90
            while await post(client) != 200:
                assert time.monotonic() < deadline, "not accepting again after the broker restarted"
                await asyncio.sleep(0.5)
            for _ in range(4):
                await asyncio.gather(*(post(client) for _ in range(2)))
            assert statuses[-8:] == [200] * 8
            assert await post_grpc() == grpc.StatusCode.OK
    finally:
        await channel.close()
        server.send_signal(signal.SIGTERM)
        assert server.wait(30) in (0, -signal.SIGTERM)
    msgs = await consume(kafka_bootstrap, f"test-{unique}-logs", len(accepted), wait=30)
    in_kafka = [orjson.loads(m.value)["labels"]["id"] for m in msgs]
    assert len(in_kafka) == len(accepted), "count in Kafka != count answered 200"
    assert sorted(in_kafka) == sorted(accepted)
    assert not set(in_kafka) & set(refused)
    assert len(refused) >= 50 * 12
    output = log.read_text(errors="replace")
    assert "kafka unavailable" in output and API_TOKEN not in output
    # said once per outage; no producer left reconnecting (aiokafka logs an error per attempt)
    assert output.count("kafka unavailable") == 1, output[-3000:]
    assert output.count("Unable connect") <= 5, output.count("Unable connect")
