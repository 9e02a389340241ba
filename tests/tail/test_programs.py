"""Logs written by the real programs, tailed with format detection into the real broker, and the
ECS fields that come out of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.tail import programs
from tests.tail.conftest import delivered, records, running, settings, until


async def _tail(kafka_bootstrap: str, topic: str, tmp_path: Path, paths: list[Path], n: int,
                **input_cfg: Any) -> list[dict[str, Any]]:
    cfg = settings(kafka_bootstrap, topic, tmp_path, inputs=[{"paths": [str(p) for p in paths], **input_cfg}])
    async with running(cfg) as tailer:
        await until(lambda: delivered(tailer, n), f"{n} records")
    recs = await records(kafka_bootstrap, topic, n)
    assert len(recs) == n
    return recs


def _count_lines(*paths: Path) -> int:
    return sum(len([line for line in p.read_text().splitlines() if line]) for p in paths)


async def test_nginx(kafka_bootstrap: str, topic: str, tmp_path: Path) -> None:
    access, json_log, error = programs.run_nginx(tmp_path)
    n = _count_lines(access, json_log, error)
    recs = await _tail(kafka_bootstrap, topic, tmp_path, [access, json_log, error], n, service="nginx")
    assert {r["_key"] for r in recs} == {b"nginx"}
    combined = [r for r in recs if r["log"]["file"]["path"] == str(access)]
    assert [r["http"]["response"]["status_code"] for r in combined] == [200, 404, 404]
    ok = combined[0]
    assert ok["url"] == {"original": "/index.html?x=1", "path": "/index.html", "query": "x=1"}
    assert ok["http"]["request"]["method"] == "GET" and ok["user_agent"] == {"original": "tail-test/1"}
    assert ok["source"]["ip"] == "127.0.0.1" and ok["log.level"] == "info" and combined[1]["log.level"] == "warning"
    as_json = [r for r in recs if r["log"]["file"]["path"] == str(json_log)]
    assert [r["http.response.status_code"] for r in as_json] == [200, 404, 404]
    assert as_json[1]["message"] == "GET /missing 404" and as_json[1]["event.duration"] == 0
    errors = [r for r in recs if r["log"]["file"]["path"] == str(error) and r["log.level"] == "error"]
    assert len(errors) == 2
    assert errors[0]["source"]["ip"] == "127.0.0.1" and errors[0]["url"]["path"] == "/missing"
    assert errors[0]["message"].startswith('open() "') and errors[0]["labels"]["connection"] > 0
    notices = [r for r in recs if r["log"]["file"]["path"] == str(error) and r["log.level"] == "info"]
    assert notices and all("@timestamp" in r and r["process"]["pid"] > 0 for r in notices)


async def test_postgres(kafka_bootstrap: str, topic: str, tmp_path: Path) -> None:
    log = programs.run_postgres()
    lines = log.read_text().splitlines()
    joined = sum(1 for line in lines if " DETAIL:  " in line or " STATEMENT:  " in line)
    recs = await _tail(kafka_bootstrap, topic, tmp_path, [log], len(lines) - joined, service="postgres")
    error = next(r for r in recs if r["labels"]["pg_severity"] == "ERROR")
    assert error["log.level"] == "error" and error["message"].startswith("duplicate key value")
    assert "DETAIL:  Key (id)=(1) already exists." in error["message"]
    assert "STATEMENT:  create table" in error["message"]
    fatal = next(r for r in recs if r["labels"]["pg_severity"] == "FATAL")
    assert fatal["log.level"] == "critical" and fatal["message"] == 'database "nope" does not exist'
    ready = next(r for r in recs if r["message"] == "database system is ready to accept connections")
    assert ready["log.level"] == "info" and ready["@timestamp"].endswith("Z") and ready["process"]["pid"] > 0


async def test_redis(kafka_bootstrap: str, topic: str, tmp_path: Path) -> None:
    log = programs.run_redis(tmp_path)
    recs = await _tail(kafka_bootstrap, topic, tmp_path, [log], _count_lines(log), service="redis")
    ready = next(r for r in recs if r["message"] == "Ready to accept connections")
    assert ready["log.level"] == "info" and ready["labels"]["redis_role"] == "master"
    assert any(r["log.level"] == "warning" and r["message"].startswith("User requested shutdown") for r in recs)
    odd = [r for r in recs if "signal-handler" in r["message"]]  # not in the usual format: shipped as text
    assert all("process" not in r for r in odd)


async def test_pino_and_pino_http(kafka_bootstrap: str, topic: str, tmp_path: Path) -> None:
    log = programs.run_pino(tmp_path)
    recs = await _tail(kafka_bootstrap, topic, tmp_path, [log], 5, service="api-service")
    listening, ok, missing, boom, invalid = recs
    assert listening["message"] == "listening" and listening["labels"]["port"] > 0
    assert listening["log"]["logger"] == "api" and listening["log.level"] == "info"
    assert ok["http"]["request"] == {"method": "GET", "id": "1"} and ok["http"]["response"] == {"status_code": 200}
    assert ok["url"]["path"] == "/users" and ok["url"]["query"] == "id=7"
    assert ok["user_agent"] == {"original": "tail-test/1"} and ok["source"]["ip"] == "127.0.0.1"
    assert isinstance(ok["event"]["duration"], int)
    assert missing["log.level"] == "info" and missing["http"]["response"]["status_code"] == 404
    # pino-http wrote level 30 for it: the app's level is kept, the error and the status are in the fields
    assert boom["message"] == "request errored" and boom["http"]["response"]["status_code"] == 500
    assert boom["error"]["message"] == "handler failed"
    assert boom["error"]["stack_trace"].startswith("Error: handler failed\n    at ")
    assert invalid["error"]["type"] == "TypeError" and invalid["message"] == "validation failed"
    assert invalid["log.level"] == "error"


async def test_python_logging_with_traceback(kafka_bootstrap: str, topic: str, tmp_path: Path) -> None:
    log = programs.run_python(tmp_path)
    recs = await _tail(kafka_bootstrap, topic, tmp_path, [log], 3, service="worker")
    slow, failed, giving_up = recs
    assert slow["log.level"] == "warning"
    assert failed["log.level"] == "error" and failed["message"].endswith("KeyError: 'missing'")
    assert "\nTraceback (most recent call last):\n" in failed["message"]
    assert giving_up["message"].endswith("giving up") and giving_up["@timestamp"].endswith("Z")
