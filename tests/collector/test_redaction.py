"""Secrets never reach an output: sensitive keys, JWTs, URL credentials, auth headers; configurable."""

from __future__ import annotations

import orjson

import collector
from collector.redact import REDACTED, Redactor
from tests.collector.conftest import assert_ecs

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"


def _recs() -> list[dict]:
    return [assert_ecs(line) for line in collector.outputs()["memory"].records]


def test_default_redaction(memlog):
    log = collector.get_logger("x")
    log.info(
        "connecting to postgresql://user:pass@db:5432/mydb",
        password="hunter2", api_key="k", Authorization="Bearer abc.def", session_cookie="c", db_token=7,
        headers={"Cookie": "sid=1", "X-Api-Key": "k", "accept": "json", "nested": [{"secret": "s"}]},
        note=f"token is {JWT}", hdr="Authorization: Bearer sk-live-123", user="ann",
    )
    rec = _recs()[0]
    line = collector.outputs()["memory"].records[0]
    for secret in (b"hunter2", b"pass@", b"abc.def", JWT.encode(), b"sk-live-123", b"sid=1"):
        assert secret not in line
    assert rec["message"] == f"connecting to postgresql://user:{REDACTED}@db:5432/mydb"
    labels = rec["labels"]
    assert labels["password"] == labels["api_key"] == labels["Authorization"] == REDACTED
    assert labels["session_cookie"] == labels["db_token"] == REDACTED
    assert labels["note"] == f"token is {REDACTED}"
    assert labels["hdr"] == f"Authorization: Bearer {REDACTED}"
    assert labels["user"] == "ann"
    assert rec["extra"]["headers"] == {"Cookie": REDACTED, "X-Api-Key": REDACTED, "accept": "json",
                                       "nested": [{"secret": REDACTED}]}


def test_caller_objects_are_not_mutated(memlog):
    headers = {"authorization": "Basic dXNlcjpwYXNz", "ok": 1}
    collector.get_logger("x").info("req", headers=headers)
    assert headers == {"authorization": "Basic dXNlcjpwYXNz", "ok": 1}
    assert _recs()[0]["extra"]["headers"]["authorization"] == REDACTED


def test_exception_text_is_redacted(memlog):
    try:
        raise ConnectionError("could not connect to redis://:s3cret@cache:6379")
    except ConnectionError:
        collector.get_logger("x").exception("down")
    line = collector.outputs()["memory"].records[0]
    assert b"s3cret" not in line
    assert "redis://:" + REDACTED + "@cache" in orjson.loads(line)["error"]["message"]


def test_configurable_keys_patterns_and_off():
    collector.configure(service="api-service", outputs="memory", metrics_interval=0,
                        redact_keys="ssn", redact_patterns=[r"\b\d{4}-\d{4}-\d{4}-\d{4}\b"])
    try:
        collector.get_logger("x").info("card 1234-5678-9012-3456", ssn="078-05-1120", password="p")
        rec = _recs()[0]
        assert rec["message"] == f"card {REDACTED}"
        assert rec["labels"] == {"ssn": REDACTED, "password": REDACTED}
        collector.configure(service="api-service", outputs="memory", metrics_interval=0, redact=False)
        collector.get_logger("x").info("postgresql://user:pass@db", password="p")
        rec = _recs()[0]
        assert rec["message"] == "postgresql://user:pass@db" and rec["labels"] == {"password": "p"}
    finally:
        collector.shutdown()


def test_redactor_unit():
    r = Redactor()
    assert r.text("plain text") == "plain text"
    assert r.text("amqp://guest:guest@rabbit/") == f"amqp://guest:{REDACTED}@rabbit/"
    assert r.text("https://example.com/path") == "https://example.com/path"
    assert r.key_is_secret("X-Auth-Token") and not r.key_is_secret("user_id")


def test_patterns_from_env_keep_commas(monkeypatch):
    monkeypatch.setenv("COLLECTOR_REDACT_PATTERNS", r'["\\b\\d{3}-\\d{2}-\\d{4}\\b", "sk_live_[a-z0-9]{4,}"]')
    collector.configure(service="api-service", outputs="memory", metrics_interval=0)
    try:
        collector.get_logger("x").info("ssn 078-05-1120 key sk_live_abcd1234")
        assert _recs()[0]["message"] == f"ssn {REDACTED} key {REDACTED}"
    finally:
        collector.shutdown()
