"""Fixtures for the OTLP intake: the app in process against the real broker, requests built with
the generated classes, and `collector otlp` as a real server for the SDK clients."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from collector.ingest.auth import token_hash
from collector.otlp.app import create_app
from collector.otlp.config import OtlpSettings
from tests.kafka_io import consume

API_TOKEN = "tok-otlp-api-service-0123456789"  # test-only values
OTHER_TOKEN = "tok-otlp-auth-service-987654321"
REPO = Path(__file__).resolve().parents[2]
NODE_DIR = REPO / "tests" / "otlp" / "node"
PROTOBUF = "application/x-protobuf"


def kv(key: str, value: Any) -> KeyValue:
    return KeyValue(key=key, value=any_value(value))


def any_value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, dict):
        out = AnyValue()
        out.kvlist_value.values.extend(kv(k, v) for k, v in value.items())
        return out
    if isinstance(value, list):
        out = AnyValue()
        out.array_value.values.extend(any_value(v) for v in value)
        return out
    return AnyValue(string_value=str(value))


def logs_request(records: list[LogRecord], service: str | None = "api-service", scope: str = "test",
                 **resource: Any) -> ExportLogsServiceRequest:
    attrs = {**({"service.name": service} if service is not None else {}), **resource}
    return ExportLogsServiceRequest(resource_logs=[ResourceLogs(
        resource=Resource(attributes=[kv(k, v) for k, v in attrs.items()]),
        scope_logs=[_scope(scope, records)],
    )])


def _scope(name: str, records: list[LogRecord]) -> ScopeLogs:
    scope = ScopeLogs(log_records=records)
    scope.scope.name = name
    return scope


def record(message: str = "hello", **attrs: Any) -> LogRecord:
    return LogRecord(time_unix_nano=1_764_633_600_123_000_000, severity_number=9, severity_text="INFO",
                     body=AnyValue(string_value=message), attributes=[kv(k, v) for k, v in attrs.items()])


@dataclass
class Otlp:
    client: httpx.AsyncClient
    settings: OtlpSettings
    bootstrap: str

    async def post(self, path: str, body: bytes | Any, token: str | None = API_TOKEN,
                   content_type: str = PROTOBUF, **headers: str) -> httpx.Response:
        hdrs = dict(headers)
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        hdrs["Content-Type"] = content_type
        if not isinstance(body, bytes):
            body = body.SerializeToString()
        return await self.client.post(path, content=body, headers=hdrs)

    async def read(self, topic: str, count: int, wait: float = 20.0) -> list[dict[str, Any]]:
        return [orjson.loads(m.value) for m in await consume(self.bootstrap, topic, count, wait)]


def make_settings(bootstrap: str, unique: str, **overrides: Any) -> OtlpSettings:
    values: dict[str, Any] = dict(
        kafka_bootstrap_servers=bootstrap,
        topic_logs=f"test-{unique}-logs", topic_metrics=f"test-{unique}-metrics",
        topic_health=f"test-{unique}-health",
        tokens={"api-service": token_hash(API_TOKEN), "auth-service": token_hash(OTHER_TOKEN)},
        kafka_timeout_s=5.0, otlp_grpc_port=0,
    )
    values.update(overrides)
    return OtlpSettings(**values)


@pytest.fixture
async def otlp(kafka_bootstrap: str, unique: str) -> AsyncIterator[Otlp]:
    settings = make_settings(kafka_bootstrap, unique, max_body_bytes=256 * 1024, max_records=1000,
                             max_record_bytes=64 * 1024)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://otlp") as client:
            yield Otlp(client, settings, kafka_bootstrap)


def serve_otlp(bootstrap: str, unique: str, port: int, log: Path, **extra_env: str) -> subprocess.Popen[bytes]:
    """`collector otlp` as a real server (uvicorn), topics test-<unique>-logs / -metrics."""
    env = {**os.environ, "INGEST_KAFKA_BOOTSTRAP_SERVERS": bootstrap, "INGEST_OTLP_PORT": str(port),
           "INGEST_TOPIC_LOGS": f"test-{unique}-logs", "INGEST_TOPIC_METRICS": f"test-{unique}-metrics",
           "INGEST_TOPIC_HEALTH": f"test-{unique}-health",
           "INGEST_TOKENS": orjson.dumps({"api-service": token_hash(API_TOKEN)}).decode(),
           "INGEST_RETRY_AFTER_S": "1", "INGEST_KAFKA_TIMEOUT_S": "3", "INGEST_OTLP_GRPC_PORT": "0",
           "COLLECTOR_OUTPUTS": "stdout", **extra_env}
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "collector.cli", "otlp"], cwd=REPO, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
