"""Bounded queues and overflow policies; the HTTP output against a loopback ingest imitation."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest

import collector
from collector.metrics import REGISTRY
from collector.outputs.stdout import StdoutOutput
from tests.collector.conftest import assert_ecs


def wait_for(cond: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


@pytest.mark.parametrize("policy,kept", [("drop_newest", [b"0", b"1", b"2"]), ("drop_oldest", [b"2", b"3", b"4"])])
def test_overflow_policies(policy: str, kept: list[bytes]):
    out = StdoutOutput(queue_size=3, overflow=policy)  # no worker started: the queue only fills
    for i in range(5):
        out.submit(str(i).encode())
    assert out.take() == kept
    assert (out.emitted, out.dropped) == (5, 2)


class Ingest:
    """A tiny ingest API imitation: records requests, answers what `mode` says."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.refusals = 0
        self.requests: list[dict[str, Any]] = []
        ingest = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                lines = [orjson.loads(x) for x in body.splitlines() if x]
                if ingest.mode == "down":
                    self.send_response(503)
                    self.send_header("Retry-After", "0")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if ingest.mode == "auth" and self.headers.get("Authorization") != "Bearer rotated":
                    reply = b'{"error": "a valid bearer token is required"}'
                    self.send_response(401)
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                    return
                poisoned = any(line.get("message") == "poison" for line in lines)
                if ingest.mode in ("400-poison", "500-poison", "500") and (poisoned or ingest.mode == "500"):
                    ingest.refusals += 1
                    reply = b'{"error": "cannot take this"}'
                    self.send_response(400 if ingest.mode == "400-poison" else 500)
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                    return
                if ingest.mode == "all-rejected":
                    reply = json.dumps({"error": "every record was rejected", "accepted": 0, "rejected": [
                        {"index": i, "reason": "message: required"} for i in range(len(lines))]}).encode()
                    self.send_response(400)
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                    return
                if ingest.mode == "small" and len(lines) > 2:
                    self.send_response(413)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                ingest.requests.append({"path": self.path, "headers": dict(self.headers), "lines": lines})
                rejected = [{"index": 0, "reason": "mapping"}] if ingest.mode == "reject-first" else []
                reply = json.dumps({"accepted": len(lines) - len(rejected), "rejected": rejected}).encode()
                self.send_response(202)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def lines(self, path: str = "/v1/logs") -> list[dict[str, Any]]:
        return [line for r in self.requests if r["path"] == path for line in r["lines"]]


@pytest.fixture
def ingest() -> Iterator[Ingest]:
    server = Ingest()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def http_out(ingest: Ingest, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    token = tmp_path / "token"
    token.write_text("s3cr3t-token\n")
    # counters other tests left in the process-wide registry are emitted on every interval; enough
    # of them (after the ingest tests, say) overflow the 5-record queue: start from an empty registry
    monkeypatch.setattr(REGISTRY, "_metrics", {})
    collector.configure(service="api-service", outputs="http", ingest_url=ingest.url, ingest_token_file=str(token),
                        queue_size=5, backoff_initial=0.05, backoff_max=0.2, metrics_interval=0, capture_stdlib=False)
    yield collector.outputs()["http"]
    collector.shutdown(2.0)


def test_http_delivers_ndjson_with_bearer_token(ingest: Ingest, http_out: Any):
    log = collector.get_logger("x")
    log.info("one", n=1)
    log.info("two", n=2)
    collector.counter("test.http.hits").inc()
    collector.emit_metrics()
    # the registry is process-wide: other tests' series are emitted too
    wait_for(lambda: http_out.delivered == http_out.emitted >= 3 and http_out.pending() == 0)
    req = ingest.requests[0]
    assert req["headers"]["Content-Type"] == "application/x-ndjson"
    assert req["headers"]["Authorization"] == "Bearer s3cr3t-token"
    assert [r["message"] for r in ingest.lines()] == ["one", "two"]
    metric = ingest.lines("/v1/metrics")
    assert [m["metric"]["value"] for m in metric if m["metric"]["name"] == "test.http.hits"] == [1]
    assert len(metric) == http_out.emitted - 2
    for rec in [*ingest.lines(), *metric]:
        assert_ecs(orjson.dumps(rec))


def test_http_outage_drops_counted_then_notice(ingest: Ingest, http_out: Any):
    ingest.mode = "down"
    log = collector.get_logger("x")
    log.info("first", i=0)
    wait_for(lambda: http_out.failures >= 1)  # the worker now holds `first` for retry
    started = time.perf_counter()
    for i in range(1, 9):
        log.info("queued", i=i)
    assert time.perf_counter() - started < 0.5  # never blocks on the dead API
    assert (http_out.emitted, http_out.dropped, http_out.delivered) == (9, 3, 0)
    ingest.mode = "ok"
    wait_for(lambda: http_out.delivered == 7)
    lines = ingest.lines()
    assert [r["labels"].get("i") for r in lines if r["message"] != lines[1]["message"]] == [0, 1, 2, 3, 4, 5]
    notice = lines[1]
    assert notice["labels"] == {"output": "http", "dropped": 3}
    assert notice["log.level"] == "warning" and "3 records were dropped" in notice["message"]
    assert collector.stats()["outputs"]["http"] == {"emitted": 10, "delivered": 7, "dropped": 3, "pending": 0,
                                                   "failures": http_out.failures, "connected": True,
                                                   "rejected": 0, "truncated": 0, "auth_failures": 0,
                                                   "last_error": None}


def test_http_413_splits_and_rejections_count_as_drops(ingest: Ingest, http_out: Any):
    ingest.mode = "small"
    log = collector.get_logger("x")
    http_out._wake.clear()
    for i in range(5):
        log.info("r", i=i)
    wait_for(lambda: http_out.delivered == 5)
    assert sorted(r["labels"]["i"] for r in ingest.lines()) == [0, 1, 2, 3, 4]
    assert all(len(r["lines"]) <= 2 for r in ingest.requests)
    ingest.mode = "reject-first"
    log.info("rejected one")
    wait_for(lambda: http_out.dropped == 1)
    time.sleep(0.3)  # no drop notice follows an API rejection (it would be rejected in turn)
    assert (http_out.rejected, http_out.delivered, http_out.dropped, http_out.emitted) == (1, 5, 1, 6)


def test_http_401_rereads_the_rotated_token_file(ingest: Ingest, http_out: Any, tmp_path: Any):
    ingest.mode = "auth"
    collector.get_logger("x").info("needs the new token")
    wait_for(lambda: http_out.failures >= 2)
    assert http_out.delivered == 0 and ingest.requests == []
    (tmp_path / "token").write_text("rotated")
    wait_for(lambda: http_out.delivered == 1)
    assert ingest.requests[0]["headers"]["Authorization"] == "Bearer rotated"
    assert http_out.dropped == 0


def test_http_auth_refusal_is_said_once_and_counted(ingest: Ingest, http_out: Any, tmp_path: Any,
                                                    capfd: pytest.CaptureFixture[str]):
    ingest.mode = "auth"
    collector.get_logger("x").info("held while the token is refused")
    wait_for(lambda: http_out.auth_failures >= 3)
    said = [line for line in capfd.readouterr().err.splitlines() if "output http" in line]
    assert len(said) == 1  # once, not once per retry
    assert "401: a valid bearer token is required" in said[0] and "s3cr3t" not in said[0]
    stats = collector.stats()["outputs"]["http"]
    assert stats["auth_failures"] >= 3 and stats["last_error"].startswith("ingest API refused the token (401")
    assert (stats["delivered"], stats["dropped"]) == (0, 0)  # kept, not dropped
    (tmp_path / "token").write_text("rotated")
    wait_for(lambda: http_out.delivered == 1)


@pytest.mark.parametrize("mode", ["400-poison", "500-poison"])
def test_http_a_record_the_api_always_refuses_is_dropped_alone(ingest: Ingest, http_out: Any, mode: str):
    ingest.mode = mode
    log = collector.get_logger("x")
    http_out._wake.clear()
    for i, message in enumerate(["a", "poison", "b", "c", "d"]):
        log.info(message, i=i)
    wait_for(lambda: http_out.delivered + http_out.dropped == 5)
    time.sleep(0.3)  # and nothing more is tried: the batch is settled
    posted = len(ingest.requests) + ingest.refusals
    time.sleep(0.5)
    assert len(ingest.requests) + ingest.refusals == posted
    assert sorted(r["labels"]["i"] for r in ingest.lines()) == [0, 2, 3, 4]
    stats = collector.stats()["outputs"]["http"]
    assert (stats["delivered"], stats["dropped"], stats["rejected"]) == (4, 1, 1)
    assert "cannot take this" in stats["last_error"]


def test_http_every_record_rejected_is_counted_not_retried(ingest: Ingest, http_out: Any):
    ingest.mode = "all-rejected"
    log = collector.get_logger("x")
    http_out._wake.clear()
    for i in range(3):
        log.info("bad", i=i)
    wait_for(lambda: http_out.dropped == 3)
    assert (http_out.rejected, http_out.delivered, http_out.failures) == (3, 0, 0)


def test_http_500_for_everything_is_an_outage_nothing_is_dropped(ingest: Ingest, http_out: Any):
    ingest.mode = "500"
    log = collector.get_logger("x")
    http_out._wake.clear()
    for i in range(4):
        log.info("kept", i=i)
    wait_for(lambda: http_out.failures >= 3)
    assert (http_out.dropped, http_out.delivered) == (0, 0)
    ingest.mode = "ok"
    wait_for(lambda: http_out.delivered == 4)
    assert sorted(r["labels"]["i"] for r in ingest.lines()) == [0, 1, 2, 3]  # each once


def test_flush_waits_for_the_batch_held_for_retry(ingest: Ingest, http_out: Any):
    ingest.mode = "down"
    collector.get_logger("x").info("held")
    wait_for(lambda: http_out.failures >= 1)
    assert http_out.pending() == 0  # the queue is empty, yet nothing is delivered
    assert collector.flush(timeout=0.3) is False
    ingest.mode = "ok"
    assert collector.flush(timeout=10) is True
    assert http_out.delivered == http_out.emitted == 1
