"""The three disagreements of issue 11 give one answer through the public entry points.

For the container `api_service_1` (older Compose naming) and its service `api_service`:
- a probe result (the prober's own `probe_one` against a real /health answering `degraded`),
- ingest requests to `/v1/health` and `/v1/logs` (the real app, records read back from Kafka),
- a Kafka record that names only the instance (its key), through the shipper's `enrich`,
all end up under service `api_service`, node `api_service_1`, after the shipper too; `degraded`
reads as degraded in the prober, in /v1/health and in the contract; `WARN` is `warning` in the
ingest API and in the shipper, as in the contract.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import orjson
import pytest

from collector.contract.health import DEGRADED, probe_status
from collector.contract.levels import WARNING, normalize_level
from collector.contract.names import split_instance
from collector.ingest.app import create_app
from collector.ingest.auth import token_hash
from collector.probe.prober import probe_one
from shipper.context import Batch, TransformSettings
from shipper.decode import decode
from shipper.enrich import enrich
from shipper.provenance import Meta
from tests.ingest.conftest import make_settings, ndjson
from tests.kafka_io import consume

SERVICE, INSTANCE = "api_service", "api_service_1"
TOKEN = "tok-one-answer-0123456789"  # test-only value


def shipped(value: bytes, key: bytes | None = None) -> dict[str, Any]:
    """One Kafka record as the shipper turns it into a document (decode, then enrich)."""
    now = datetime.now(UTC)
    message = Meta(topic="elk-logs", partition=0, offset=1, timestamp=int(now.timestamp() * 1000), key=key,
                   value=value)
    return enrich(decode(value, 1 << 20), message, Batch(TransformSettings(host_name="shipper-test"), now))


def where(doc: dict[str, Any]) -> tuple[str, str]:
    return doc["service"]["name"], doc["service"]["node"]["name"]


@pytest.fixture
def degraded_service() -> Iterator[str]:
    """A real HTTP service whose /health answers 200 {"status": "degraded"}."""
    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = orjson.dumps({"status": "degraded", "service": INSTANCE})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/health"
    server.shutdown()
    thread.join(5)


@pytest.fixture
async def ingested(kafka_bootstrap: str, unique: str) -> AsyncIterator[tuple[list[Any], list[Any]]]:
    """What the ingest API produced for one /v1/logs and one /v1/health request of the instance:
    (Kafka messages of the logs topic, of the health topic)."""
    settings = make_settings(kafka_bootstrap, unique, tokens={SERVICE: token_hash(TOKEN)})
    app = create_app(settings)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-ndjson"}
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://ingest") as client:
        logs = await client.post("/v1/logs", headers=headers, content=ndjson(
            {"message": "slow upstream", "level": "WARN", "service": {"name": INSTANCE}}))
        health = await client.post("/v1/health", headers=headers, content=ndjson(
            {"status": "degraded", "service": INSTANCE}))
        assert (logs.status_code, health.status_code) == (202, 202), (logs.text, health.text)
    yield (await consume(kafka_bootstrap, settings.topic_logs, 1),
           await consume(kafka_bootstrap, settings.topic_health, 1))


def test_the_contract_answers() -> None:
    assert split_instance(INSTANCE) == (SERVICE, INSTANCE)
    assert probe_status(True, "degraded") == DEGRADED
    assert normalize_level("WARN") == WARNING


async def test_ingest_requests(ingested: tuple[list[Any], list[Any]]) -> None:
    logs, health = ingested
    assert len(logs) == 1 and len(health) == 1
    log_doc, health_doc = orjson.loads(logs[0].value), orjson.loads(health[0].value)
    assert where(log_doc) == (SERVICE, INSTANCE)
    assert log_doc["log.level"] == WARNING
    assert where(health_doc) == (SERVICE, INSTANCE)
    assert health_doc["health"]["status"] == probe_status(True, "degraded") == DEGRADED
    # and the shipper keeps all of it
    for message in (*logs, *health):
        doc = shipped(message.value, message.key)
        assert where(doc) == (SERVICE, INSTANCE)
    assert shipped(logs[0].value, logs[0].key)["log"]["level"] == WARNING
    assert shipped(health[0].value, health[0].key)["health"]["status"] == DEGRADED


async def test_probe_result(degraded_service: str) -> None:
    async with httpx.AsyncClient() as client:
        result = await probe_one(client, INSTANCE, degraded_service, 5.0)
    assert where(result) == (SERVICE, INSTANCE)
    assert result["health"]["status"] == DEGRADED
    # the prober sends it keyed by the node name; the shipper keeps service and state
    doc = shipped(orjson.dumps(result), INSTANCE.encode())
    assert where(doc) == (SERVICE, INSTANCE)
    assert doc["health"]["status"] == DEGRADED


def test_kafka_record_through_the_shipper() -> None:
    # a container's own line, the instance known only from the Kafka key (as the tailer keys it)
    doc = shipped(orjson.dumps({"message": "slow upstream", "level": "WARN"}), INSTANCE.encode())
    assert where(doc) == (SERVICE, INSTANCE)
    assert doc["log"]["level"] == WARNING
    dotted = shipped(orjson.dumps({"message": "x", "log.level": "WARN"}), INSTANCE.encode())
    assert where(dotted) == (SERVICE, INSTANCE)
    assert dotted["log"]["level"] == WARNING
