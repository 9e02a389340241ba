"""The library's HTTP output against the real ingest API and broker: what a Python service logs
through `COLLECTOR_OUTPUTS=http` lands in Kafka unchanged, metrics on the metrics topic."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx
import orjson
import pytest

import collector
from collector.metrics import REGISTRY
from tests.ingest.conftest import API_TOKEN, free_port, serve, until_up
from tests.kafka_io import consume

pytestmark = pytest.mark.stack


async def _until_up(port: int) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        await until_up(client)


def test_library_http_output_through_the_api(kafka_bootstrap: str, unique: str, tmp_path: Path) -> None:
    topic = f"test-{unique}-logs"
    port = free_port()
    server = serve(kafka_bootstrap, topic, port, tmp_path / "serve.log")
    token_file = tmp_path / "token"
    token_file.write_text(API_TOKEN)
    try:
        asyncio.run(_until_up(port))
        collector.configure(service="api-service", service_version="2.0.0", environment="test", outputs="http,memory",
                            ingest_url=f"http://127.0.0.1:{port}", ingest_token_file=str(token_file),
                            metrics_interval=0, capture_stdlib=False)
        try:
            log = collector.get_logger("api.users")
            for i in range(300):
                log.info("user logged in", user_id=i, password="hunter2")
            REGISTRY.counter("test.requests").inc(3, route="/api")
            collector.emit_metrics()
            assert collector.flush(20)
            out = collector.outputs()["http"]
            sent = list(collector.outputs()["memory"].records)
            # the process-wide registry may hold other tests' metrics too: each is one more document
            n_metrics = sum(1 for r in sent if b'"kind":"metric"' in r)
            assert n_metrics >= 1
            assert out.delivered == 300 + n_metrics and out.dropped == 0 and out.rejected == 0
        finally:
            collector.shutdown()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    logs = asyncio.run(consume(kafka_bootstrap, topic, 300))
    metrics = asyncio.run(consume(kafka_bootstrap, f"{topic}-m", n_metrics))
    assert len(logs) == 300 and len(metrics) == n_metrics
    original = {orjson.loads(r)["labels"]["user_id"]: orjson.loads(r) for r in sent if b'"user_id"' in r}
    for msg in logs:
        rec = orjson.loads(msg.value)
        assert rec == original[rec["labels"]["user_id"]]  # the same record, field for field
        assert rec["labels"]["password"] == "[REDACTED]"
    by_name = {orjson.loads(m.value)["metric"]["name"]: orjson.loads(m.value) for m in metrics}
    metric = by_name["test.requests"]
    assert metric["event"]["kind"] == "metric"
