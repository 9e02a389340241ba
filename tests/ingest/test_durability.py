"""Kafka stopped under a running `collector serve` (real uvicorn, real broker): 503 with Retry-After,
nothing lost or invented; restarted: accepted again, and Kafka holds exactly the records the API
answered 202 for, by id."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
import orjson
import pytest

from stack.localstack import Config, down, up
from tests.ingest.conftest import API_TOKEN, free_port, ndjson, serve, until_up
from tests.kafka_io import consume

pytestmark = [pytest.mark.stack, pytest.mark.slow]


async def test_kafka_stopped_then_restarted(kafka_bootstrap: str, unique: str, stack_config: Config,
                                            tmp_path: Path) -> None:
    topic = f"test-{unique}-logs"
    port = free_port()
    log = tmp_path / "serve.log"
    # room for two requests in process at once, not three: each holds its ~2.5 kB body and the
    # ~10 kB of records shaped from it
    server = serve(kafka_bootstrap, topic, port, log, INGEST_MAX_IN_FLIGHT_BYTES="30000")
    accepted_ids: list[str] = []
    refused_ids: list[str] = []
    statuses: list[int] = []
    refusals: list[str] = []
    headers = {"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/x-ndjson"}
    batch_no = 0

    async def post(client: httpx.AsyncClient, size: int = 50) -> httpx.Response:
        nonlocal batch_no
        ids = [f"b{batch_no}-{i}" for i in range(size)]
        batch_no += 1
        body = ndjson(*({"message": "durability", "labels": {"id": rid}} for rid in ids))
        resp = await client.post("/v1/logs", content=body, headers=headers)
        statuses.append(resp.status_code)
        if resp.status_code == 202:
            assert resp.json() == {"accepted": size, "rejected": []}
            accepted_ids.extend(ids)
        else:
            assert resp.status_code == 503, resp.text
            refusals.append(resp.json()["error"])
            assert resp.headers["retry-after"].isdigit() and int(resp.headers["retry-after"]) >= 1
            refused_ids.extend(ids)
        return resp

    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            await until_up(client)
            for _ in range(10):
                assert (await post(client)).status_code == 202
            await asyncio.to_thread(down, stack_config, ("kafka",))
            try:
                # concurrent senders while the broker is gone: every answer is 202 (acked before the
                # stop) or 503; after the first failure they come back at once, without queueing
                for _ in range(6):
                    await asyncio.gather(*(post(client) for _ in range(4)))
                assert statuses.count(503) >= 20
                # the first four hit a broker that just went away: two wait for the timeout, holding
                # their bytes; the others are refused at once (bounded memory); later ones fail fast
                assert sum("too many bytes in process" in r for r in refusals) >= 1, refusals[:6]
                health = await client.get("/health")
                assert health.status_code == 503 and health.json()["checks"]["kafka"]["status"] == "unhealthy"
                t0 = time.monotonic()
                resp = await post(client)
                assert resp.status_code == 503 and time.monotonic() - t0 < 3.5
                assert "ingest_kafka_up 0" in (await client.get("/metrics")).text
            finally:
                await asyncio.to_thread(up, stack_config, ("kafka",))
            # idle: /health itself finds the broker again
            deadline = time.monotonic() + 90
            while (await client.get("/health")).status_code != 200:
                assert time.monotonic() < deadline, "/health did not recover after the broker restarted"
                await asyncio.sleep(0.5)
            while (await post(client)).status_code != 202:
                assert time.monotonic() < deadline, "not accepting again after the broker restarted"
                await asyncio.sleep(0.5)
            for _ in range(8):
                await asyncio.gather(*(post(client) for _ in range(2)))
            assert statuses[-16:] == [202] * 16
            assert (await client.get("/health")).status_code == 200
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after a clean stop
    msgs = await consume(kafka_bootstrap, topic, len(accepted_ids), wait=30)
    in_kafka = [orjson.loads(m.value)["labels"]["id"] for m in msgs]
    assert len(in_kafka) == len(accepted_ids), "count in Kafka != count the API accepted"
    assert sorted(in_kafka) == sorted(accepted_ids)
    assert not set(in_kafka) & set(refused_ids)
    assert len(refused_ids) >= 50 * 20
    output = log.read_text(errors="replace")
    assert "kafka unavailable" in output and API_TOKEN not in output
    # said once per outage; no producer left reconnecting (aiokafka logs an error per attempt)
    assert output.count("kafka unavailable") == 1, output[-3000:]
    assert output.count("Unable connect") <= 5, output.count("Unable connect")
