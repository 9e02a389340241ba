"""`collector forward-nginx` against a real `collector serve` and broker: lines written to a growing,
then rotated, access log all arrive, mapped (level from status, duration from request_time)."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from pathlib import Path

import httpx
import orjson
import pytest

from collector.ingest.forward import Forwarder, to_record
from tests.ingest.conftest import API_TOKEN, free_port, serve, until_up
from tests.kafka_io import consume

pytestmark = pytest.mark.stack


def _line(i: int, status: int = 200) -> str:
    return json.dumps({"@timestamp": "2026-01-02T03:04:05+00:00", "http.request.method": "GET",
                       "url.original": f"/api/users/{i}", "http.response.status_code": status,
                       "request_time": "0.012", "source.ip": "10.0.0.7", "user_agent.original": "curl/8"}) + "\n"


def test_to_record_mapping() -> None:
    rec = to_record(_line(1, 503).strip())
    assert rec["log.level"] == "error" and rec["event.duration"] == 12_000_000
    assert rec["message"] == "GET /api/users/1 503" and "request_time" not in rec
    assert to_record(_line(2, 404).strip())["log.level"] == "warning"
    assert to_record("not json") == {"message": "not json", "log.level": "warning", "labels": {"unparsed": True}}


def test_tail_rotate_and_deliver(kafka_bootstrap: str, unique: str, tmp_path: Path) -> None:
    topic = f"test-{unique}-logs"
    port = free_port()
    server = serve(kafka_bootstrap, topic, port, tmp_path / "serve.log")
    access = tmp_path / "access.json"
    access.write_text(_line(0))  # already there: sent with --from-start
    forwarder = Forwarder(access, f"http://127.0.0.1:{port}", API_TOKEN, from_start=True)
    thread = threading.Thread(target=forwarder.run, daemon=True)
    try:
        asyncio.run(_until_up(port))
        thread.start()
        with open(access, "a") as out:
            for i in range(1, 600):
                out.write(_line(i, 500 if i % 100 == 0 else 200))
            out.write('{"partial": ')  # finished below, after a pause
            out.flush()
            time.sleep(1.5)
            out.write('true, "message": "completed later"}\n')
        time.sleep(1.5)
        access.rename(tmp_path / "access.json.1")  # logrotate
        access.write_text("".join(_line(i) for i in range(600, 650)) + "garbage line\n")
        deadline = time.monotonic() + 30
        while forwarder.sent < 652 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        forwarder.stop.set()
        thread.join(10)
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    assert forwarder.sent == 652 and forwarder.rejected == 0
    msgs = asyncio.run(consume(kafka_bootstrap, topic, 652))
    recs = [orjson.loads(m.value) for m in msgs]
    assert len(recs) == 652
    paths = sorted(int(r["url"]["original"].rsplit("/", 1)[1]) for r in recs if "url" in r)
    assert paths == list(range(650))
    errors = [r for r in recs if r["log.level"] == "error"]
    assert len(errors) == 5 and all(r["http"]["response"]["status_code"] == 500 for r in errors)
    assert all(r["event"]["duration"] == 12_000_000 for r in recs if "url" in r)
    assert {r["message"] for r in recs if "url" not in r} == {"completed later", "garbage line"}


async def _until_up(port: int) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        await until_up(client)
