"""Fixtures for the ingest API: settings with throwaway tokens and unique topics, the app with its
lifespan running against the real broker, and a consumer to read what it produced."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from collector.ingest.app import create_app
from collector.ingest.auth import token_hash
from collector.ingest.config import IngestSettings
from tests.kafka_io import consume

API_TOKEN = "tok-api-service-0123456789"  # test-only values
AUTH_TOKEN = "tok-auth-service-9876543210"
FILE_TOKEN = "tok-nginx-from-a-secret-file"
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Api:
    client: httpx.AsyncClient
    settings: IngestSettings
    bootstrap: str

    async def post(self, path: str, body: bytes | list[Any] | dict[str, Any], token: str | None = API_TOKEN,
                   content_type: str | None = "application/x-ndjson", **headers: str) -> httpx.Response:
        hdrs = dict(headers)
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        if isinstance(body, list | dict):
            body = orjson.dumps(body)
            content_type = content_type or "application/json"
        if content_type is not None:
            hdrs["Content-Type"] = content_type
        return await self.client.post(path, content=body, headers=hdrs)

    async def read(self, topic: str, count: int, wait: float = 20.0) -> list[Any]:
        return await consume(self.bootstrap, topic, count, wait)


def ndjson(*records: dict[str, Any]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


def make_settings(bootstrap: str, unique: str, tokens_dir: Path | None = None, **overrides: Any) -> IngestSettings:
    values: dict[str, Any] = dict(
        kafka_bootstrap_servers=bootstrap,
        topic_logs=f"test-{unique}-logs", topic_metrics=f"test-{unique}-metrics",
        topic_health=f"test-{unique}-health",
        tokens={"api-service": token_hash(API_TOKEN), "auth-service": token_hash(AUTH_TOKEN)},
        tokens_dir=tokens_dir, kafka_timeout_s=5.0,
    )
    values.update(overrides)
    return IngestSettings(**values)


@pytest.fixture
def tokens_dir(tmp_path: Path) -> Path:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "nginx").write_text(FILE_TOKEN + "\n")
    return secrets


@pytest.fixture
async def api(kafka_bootstrap: str, unique: str, tokens_dir: Path) -> AsyncIterator[Api]:
    settings = make_settings(kafka_bootstrap, unique, tokens_dir, max_body_bytes=256 * 1024, max_records=1000)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
            yield Api(client, settings, kafka_bootstrap)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(bootstrap: str, topic: str, port: int, log: Path, **extra_env: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "INGEST_KAFKA_BOOTSTRAP_SERVERS": bootstrap, "INGEST_PORT": str(port),
           "INGEST_TOPIC_LOGS": topic, "INGEST_TOPIC_METRICS": f"{topic}-m", "INGEST_TOPIC_HEALTH": f"{topic}-h",
           "INGEST_TOKENS": orjson.dumps({"api-service": token_hash(API_TOKEN)}).decode(),
           "INGEST_RETRY_AFTER_S": "1", "INGEST_KAFKA_TIMEOUT_S": "3", "INGEST_ACCESS_LOG": "true",
           "COLLECTOR_OUTPUTS": "stdout", "COLLECTOR_LEVEL": "debug", **extra_env}
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "collector.cli", "serve"], cwd=REPO, env=env,
                                stdout=out, stderr=subprocess.STDOUT)


async def until_up(client: httpx.AsyncClient, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if (await client.get("/health")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.2)
    raise AssertionError("the ingest API did not come up")
