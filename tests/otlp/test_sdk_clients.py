"""The official SDKs as real clients, configured by environment variables only, against `collector
otlp` (real uvicorn) and the real shipper: every record and metric series is in the engine once,
with the mapped fields; a wrong token is a 401 the exporter reports.

Clients: Python (`opentelemetry-sdk` + `opentelemetry-exporter-otlp-proto-http` and `-proto-grpc`,
through `logging`) and Node (`@opentelemetry/sdk-logs` + `exporter-logs-otlp-http` (JSON), `-proto`
and `-grpc`, with the matching metrics exporters; installed from tests/otlp/node/package-lock.json
by `make node-deps`): OTLP/HTTP in both encodings and OTLP/gRPC.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from opensearchpy import AsyncOpenSearch

from tests.otlp.conftest import API_TOKEN, NODE_DIR, REPO, serve_otlp
from tests.shipper.harness import Run, delete_namespace, free_port, stop

pytestmark = pytest.mark.stack

LOGS_EACH = 40
CLIENTS = (("py", "python http/protobuf"), ("pg", "python grpc"), ("nj", "node http/json"),
           ("np", "node http/protobuf"), ("ng", "node grpc"))
GRPC = ("pg", "ng")


@dataclass
class Ports:
    http: int
    grpc: int

    def of(self, prefix: str) -> int:
        return self.grpc if prefix in GRPC else self.http


def client_env(prefix: str, ports: Ports, token: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update({
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{ports.of(prefix)}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc" if prefix in GRPC else "http/protobuf",
        "OTEL_EXPORTER_OTLP_HEADERS": f"Authorization=Bearer {token}",
        "OTEL_SERVICE_NAME": "api-service",
        "OTEL_RESOURCE_ATTRIBUTES": "service.instance.id=api-service-1,deployment.environment=staging,"
                                    "service.version=2.1.0",
    })
    return env


def run_client(prefix: str, ports: Ports, token: str = API_TOKEN, count: int = LOGS_EACH) -> tuple[list[Any], bytes]:
    """(the exports' results as the client saw them, its stderr)."""
    if prefix.startswith("p"):
        cmd = [sys.executable, str(REPO / "tests" / "otlp" / "clients" / "python_client.py"), str(count), prefix]
    else:
        cmd = ["node", str(NODE_DIR / "client.js"), {"nj": "json", "np": "proto", "ng": "grpc"}[prefix],
               str(count), prefix]
    done = subprocess.run(cmd, env=client_env(prefix, ports, token), capture_output=True, timeout=120, cwd=NODE_DIR)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return list(orjson.loads(done.stdout.decode().strip().splitlines()[-1])), done.stderr


async def until_up(port: int, within: float = 30) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(f"http://127.0.0.1:{port}/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError("collector otlp did not come up")


async def sources(search_url: str, index: str, want: int, idle: float = 30.0) -> list[dict[str, Any]]:
    """Every document of `index`, once `want` are there or nothing new arrived for `idle` seconds."""
    client = AsyncOpenSearch(hosts=[search_url])
    try:
        seen, last_change = -1, time.monotonic()
        while True:
            await client.indices.refresh(index=index, ignore_unavailable=True)
            found = await client.search(index=index, body={"size": 1000, "query": {"match_all": {}}},
                                        params={"ignore_unavailable": "true"})
            hits = [h["_source"] for h in found["hits"]["hits"]]
            if len(hits) != seen:
                seen, last_change = len(hits), time.monotonic()
            if len(hits) >= want:
                await asyncio.sleep(2)  # anything beyond `want` would be a duplicate: give it time to show
                await client.indices.refresh(index=index, ignore_unavailable=True)
                found = await client.search(index=index, body={"size": 1000, "query": {"match_all": {}}})
                return [h["_source"] for h in found["hits"]["hits"]]
            if time.monotonic() - last_change > idle:
                return hits
            await asyncio.sleep(0.5)
    finally:
        await client.close()


@pytest.fixture
def world(kafka_bootstrap: str, search_url: str, unique: str, tmp_path: Path) -> Any:
    run = Run(kafka_bootstrap, search_url, unique, tmp_path)
    yield run
    asyncio.run(delete_namespace(search_url, run.namespace))


async def test_python_and_node_sdks_deliver_logs_and_metrics_end_to_end(world: Run, unique: str,
                                                                         tmp_path: Path) -> None:
    ports = Ports(free_port(), free_port())
    server = serve_otlp(world.bootstrap, unique, ports.http, tmp_path / "otlp.log",
                        INGEST_OTLP_GRPC_PORT=str(ports.grpc))
    shipper = world.start_shipper(SHIPPER_TOPICS=f"test-{unique}-logs,test-{unique}-metrics")
    try:
        await until_up(ports.http)
        results = {prefix: (await asyncio.to_thread(run_client, prefix, ports))[0] for prefix, _ in CLIENTS}
        for prefix, outcome in results.items():
            assert {r["signal"] for r in outcome} == {"logs", "metrics"}, (prefix, outcome)
            assert all(r.get("code", 0) == 0 and r.get("result", "SUCCESS") == "SUCCESS" for r in outcome), outcome

        logs = await sources(world.search_url, f"logs-api_service-{world.namespace}", LOGS_EACH * len(CLIENTS))
        ids = Counter(d["labels"]["id"] for d in logs)
        assert ids == Counter({f"{p}-{i}": 1 for p, _ in CLIENTS for i in range(LOGS_EACH)})  # exact, no duplicates
        for doc in logs:
            service = dict(doc["service"])
            assert service.pop("language")["name"] in ("python", "nodejs")  # telemetry.sdk.language
            assert service == {"name": "api-service", "version": "2.1.0", "environment": "staging",
                               "node": {"name": "api-service-1"}}
            assert doc["ecs"]["version"] and doc["data_stream"]["dataset"] == "api_service"
        by_id = {d["labels"]["id"]: d for d in logs}
        py_error = by_id["py-9"]
        assert py_error["log"]["level"] == "error" and py_error["message"] == "python record 9 failed"
        assert py_error["error"]["type"] == "ValueError" and "Traceback" in py_error["error"]["stack_trace"]
        for prefix in ("py", "pg"):
            assert by_id[f"{prefix}-1"]["log"]["level"] == "warning"
            assert by_id[f"{prefix}-1"]["http"]["response"]["status_code"] == 201
            assert by_id[f"{prefix}-1"]["log"]["logger"] == "python-client"
            assert by_id[f"{prefix}-9"]["error"]["type"] == "ValueError"
        for prefix in ("nj", "np", "ng"):
            assert by_id[f"{prefix}-9"]["error"] == {"type": "TypeError", "message": "boom"}
            assert by_id[f"{prefix}-9"]["log"]["level"] == "error"
            assert by_id[f"{prefix}-1"]["http"]["request"]["method"] == "POST"
            assert by_id[f"{prefix}-1"]["url"]["path"] == "/orders"
            structured = by_id[f"{prefix}-0"]
            assert orjson.loads(structured["message"]) == {"order": 0, "items": ["a", "b"]}
            assert structured["extra"]["body"] == {"order": 0, "items": ["a", "b"]}

        metrics = await sources(world.search_url, f"metrics-api_service-{world.namespace}", 3 * len(CLIENTS))
        series = Counter(d["labels"]["id"] for d in metrics)
        kinds = ("counter", "histogram", "gauge")
        assert series == Counter({f"{p}-{k}": 1 for p, _ in CLIENTS for k in kinds})
        by_series = {d["labels"]["id"]: d["metric"] for d in metrics}
        for prefix, _ in CLIENTS:
            counter, histogram, gauge = (by_series[f"{prefix}-{k}"] for k in kinds)
            assert counter["name"] == "orders.placed" and counter["type"] == "counter" and counter["value"] == 5
            assert counter["temporality"] == "cumulative" and counter["delta"] == 5  # since its start time
            assert histogram["type"] == "histogram" and histogram["count"] == 5
            assert histogram["sum"] == pytest.approx(1.76) and histogram["min"] == 0.01 and histogram["max"] == 1.5
            assert 0.01 <= histogram["p50"] <= histogram["p95"] <= histogram["p99"] <= 1.5
            assert gauge == {"name": "queue.depth", "unit": "1", "type": "gauge", "value": 7}
    finally:
        stop(shipper)
        stop(server)


async def test_wrong_token_is_reported_by_the_exporters(kafka_bootstrap: str, unique: str, tmp_path: Path) -> None:
    """401 over HTTP, UNAUTHENTICATED (16) over gRPC, as each exporter reports it."""
    ports = Ports(free_port(), free_port())
    server = serve_otlp(kafka_bootstrap, unique, ports.http, tmp_path / "otlp.log",
                        INGEST_OTLP_GRPC_PORT=str(ports.grpc))
    try:
        await until_up(ports.http)
        for prefix, status in (("nj", 401), ("np", 401), ("ng", 16)):
            outcome, _ = await asyncio.to_thread(run_client, prefix, ports, "not-the-token", 3)
            assert [(r["signal"], r["status"]) for r in outcome] == [("logs", status), ("metrics", status)], outcome
        for prefix, said in (("py", b"401"), ("pg", b"UNAUTHENTICATED")):
            outcome, stderr = await asyncio.to_thread(run_client, prefix, ports, "not-the-token", 3)
            assert [r["result"] for r in outcome] == ["FAILURE", "FAILURE"]
            assert said in stderr  # the exporter logs the refusal
    finally:
        stop(server)
