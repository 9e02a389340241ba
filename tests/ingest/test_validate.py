"""Shaping posted records into the library's ECS shape (pure units, no server)."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

import collector
import collector.contract.timefmt
from collector.contract.ecs import ECS_VERSION
from collector.ingest.validate import OtherService, Reject, Shaper, parse_level, parse_timestamp
from collector.redact import REDACTED, Redactor

SVC = "api-service"


@pytest.fixture
def shaper() -> Shaper:
    return Shaper(Redactor(True))


def _spec_first(rec: dict[str, Any]) -> None:
    """The spec fields first; `@timestamp` only when the caller gave one (else Kafka's time stands for it)."""
    spec = ["@timestamp", "log.level", "message", "ecs.version"] if "@timestamp" in rec else SPEC_REST
    assert list(rec)[: len(spec)] == spec
    assert rec["ecs.version"] == ECS_VERSION


SPEC_REST = ["log.level", "message", "ecs.version"]


def test_no_time_is_stamped_so_a_retried_body_is_the_same_bytes(shaper: Shaper) -> None:
    """Issue 20 item 9: a record without a time leaves the ingest API without one (the shipper takes
    the Kafka record's time): the same body shaped twice, later, is the same bytes, so a client's
    retry of a record with an `event.id` is the same document."""
    posted = {"message": "paid", "event": {"id": "pay-1"}}
    first = orjson.dumps(shaper.log(dict(posted), SVC))
    time.sleep(0.002)  # past the millisecond a stamp would show
    again = orjson.dumps(shaper.log(dict(posted), SVC))
    assert first == again and b"@timestamp" not in first


def test_a_library_record_passes_through_unchanged(shaper: Shaper) -> None:
    collector.configure(service=SVC, service_version="1.2.3", environment="test", outputs="memory",
                        metrics_interval=0, capture_stdlib=False)
    try:
        log = collector.get_logger("api.users")
        log.info("user logged in", user_id=42, path="/login", ctx={"a": [1, 2]})
        try:
            raise ValueError("kaputt")
        except ValueError:
            log.exception("failed")
        lines = list(collector.outputs()["memory"].records)
    finally:
        collector.shutdown()
    for line in lines:
        original = orjson.loads(line)
        shaped = shaper.log(orjson.loads(line), SVC)
        _spec_first(shaped)
        assert shaped == original


def test_pino_record(shaper: Shaper) -> None:
    rec = shaper.log({"level": 50, "time": 1700000000123, "pid": 7, "hostname": "h1", "msg": "db down",
                      "err": {"type": "Error", "message": "connect ECONNREFUSED"}}, SVC)
    _spec_first(rec)
    assert rec["@timestamp"] == "2023-11-14T22:13:20.123Z"
    assert rec["log.level"] == "error" and rec["message"] == "db down"
    assert rec["service"] == {"name": SVC}
    assert rec["event"] == {"dataset": "api_service"}
    assert rec["labels"] == {"pid": 7, "hostname": "h1"}
    assert rec["extra"] == {"err": {"type": "Error", "message": "connect ECONNREFUSED"}}


def test_winston_record_dotted_keys_and_instance_name(shaper: Shaper) -> None:
    rec = shaper.log({"level": "warn", "message": "slow", "timestamp": "2026-01-02T03:04:05+02:00",
                      "service.name": "api-service-2", "http.response.status_code": 504, "trace.id": "abc",
                      "url.path": "/api/users", "event.duration": 1500000, "event.dataset": "elk.alerts",
                      "data_stream": {"dataset": "elk.alerts"}, "request.id": "r-1"}, SVC)
    assert rec["@timestamp"] == "2026-01-02T01:04:05.000Z"
    assert rec["log.level"] == "warning"
    assert rec["service"] == {"name": SVC, "node": {"name": "api-service-2"}}
    assert rec["http"] == {"response": {"status_code": 504}}
    assert rec["trace"] == {"id": "abc"} and rec["url"] == {"path": "/api/users"}
    assert rec["event"] == {"duration": 1500000, "dataset": "api_service"}  # the caller can't pick a stream
    assert "data_stream" not in rec
    assert rec["labels"] == {"request_id": "r-1"}


def test_secrets_are_redacted(shaper: Shaper) -> None:
    rec = shaper.log({"message": "login with Bearer abc.def.ghi", "password": "hunter2",
                      "labels": {"api_key": "k", "ok": "postgresql://user:pass@db:5432/mydb"},
                      "url": {"full": "https://u:pw@example.com/x"}, "session": {"id": 1}}, SVC)
    assert rec["message"] == f"login with Bearer {REDACTED}"
    assert rec["labels"] == {"api_key": REDACTED, "ok": f"postgresql://user:{REDACTED}@db:5432/mydb",
                             "password": REDACTED}
    assert rec["url"] == {"full": f"https://u:{REDACTED}@example.com/x"}
    assert rec["extra"] == {"session": REDACTED}


@pytest.mark.parametrize(("raw", "reason"), [
    ([1], "not a JSON object"),
    ({"level": "info"}, "message: required"),
    ({"message": {"a": 1}}, "message: expected a string"),
    ({"message": "x", "level": "loud"}, "log.level"),
    ({"message": "x", "@timestamp": "yesterday"}, "@timestamp"),
    ({"message": "x", "@timestamp": 1e30}, "@timestamp"),
    ({"message": "x", "service": 5}, "service: expected"),
    ({"message": "x", "event": "e"}, "event: expected an object"),
    ({"message": "x", "event": {"duration": -1}}, "event.duration"),
    ({"message": "x", "trace": {"id": 5}}, "trace.id"),
    ({"message": "x", "http": "GET"}, "http: expected an object"),
    ({"message": "x", "tags": "a"}, "tags"),
    ({"message": "x", "labels": [1]}, "labels"),
    ({"message": "x", "http": {"a": 1}, "http.a": 2}, "given twice"),
    ({"message": "x", "url": 1, "url.path": "/"}, "url"),
])
def test_rejections_name_the_field(shaper: Shaper, raw: Any, reason: str) -> None:
    with pytest.raises(Reject, match=reason.replace(".", r"\.").replace("(", r"\(")):
        shaper.log(raw, SVC)


def test_other_service_is_refused(shaper: Shaper) -> None:
    for name in ("auth-service", "api-service-x", "api-service-", "api"):
        with pytest.raises(OtherService):
            shaper.log({"message": "x", "service": {"name": name}}, SVC)
    with pytest.raises(OtherService):
        shaper.health({"status": "healthy", "service": "auth-service-1"}, SVC)


def test_instance_names_follow_the_contract(shaper: Shaper) -> None:
    # `api_service_1` (older Compose) is an instance of `api_service`, as in the prober and the shipper
    rec = shaper.log({"message": "x", "service": {"name": "api_service_1"}}, "api_service")
    assert rec["service"] == {"name": "api_service", "node": {"name": "api_service_1"}}
    health = shaper.health({"status": "ok", "service": "api_service_2"}, "api_service")
    assert health["service"] == {"name": "api_service", "node": {"name": "api_service_2"}}
    with pytest.raises(OtherService):
        shaper.log({"message": "x", "service": {"name": "api_service_x"}}, "api_service")


def test_bad_timestamps_are_a_reject_per_record(shaper: Shaper) -> None:
    # a year that overflows when moved to UTC raised OverflowError out of the shaper before
    for bad in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "not a time", 1e300, float("nan"), [1]):
        with pytest.raises(Reject, match="@timestamp"):
            shaper.log({"message": "x", "@timestamp": bad}, SVC)


def test_levels_and_timestamps() -> None:
    assert [parse_level(v) for v in ("TRACE", "Warn", "WARN", "fatal", 20, 60, "critical", "silly", "http")] == \
        ["debug", "warning", "warning", "critical", "debug", "critical", "critical", "debug", "info"]
    assert parse_timestamp("2026-01-02T03:04:05.123Z") == "2026-01-02T03:04:05.123Z"
    assert parse_timestamp("2026-01-02T03:04:05.123456Z") == "2026-01-02T03:04:05.123Z"
    assert parse_timestamp("2026-01-02 03:04:05") == "2026-01-02T03:04:05.000Z"
    assert parse_timestamp(1700000000) == "2023-11-14T22:13:20.000Z"
    with pytest.raises(Reject):
        parse_timestamp(True)


def test_metric_documents(shaper: Shaper) -> None:
    rec = shaper.metric({"metric": {"name": "http.server.duration", "type": "histogram", "unit": "ms",
                                    "count": 3, "sum": 30.0, "p95": 12.0}, "labels": {"route": "/api"}}, SVC)
    _spec_first(rec)
    assert "@timestamp" not in rec
    assert rec["message"] == "metric http.server.duration" and rec["log.level"] == "info"
    assert rec["event"] == {"kind": "metric", "dataset": "api_service"}
    assert rec["metric"] == {"name": "http.server.duration", "type": "histogram", "unit": "ms",
                             "count": 3, "sum": 30.0, "p95": 12.0}
    assert rec["labels"] == {"route": "/api"}
    for bad, reason in (({}, "metric: an object"), ({"metric": {"type": "gauge", "value": 1}}, "metric.name"),
                        ({"metric": {"name": "m", "type": "summary", "value": 1}}, "metric.type"),
                        ({"metric": {"name": "m", "type": "counter"}}, "metric.value"),
                        ({"metric": {"name": "m", "type": "gauge", "value": "1"}}, "metric.value"),
                        ({"metric": {"name": "m", "type": "histogram", "value": 1}}, "metric.count")):
        with pytest.raises(Reject, match=reason.replace(".", r"\.")):
            shaper.metric(bad, SVC)


def test_health_from_the_seed_body_and_probe_shape(shaper: Shaper) -> None:
    seed = shaper.health({"status": "healthy", "service": "api-service-1", "timestamp": "2026-01-02T03:04:05.000Z",
                          "uptime": 12.5}, SVC)
    _spec_first(seed)
    assert seed["service"] == {"name": SVC, "node": {"name": "api-service-1"}}
    assert seed["health"] == {"body_status": "healthy", "status": "healthy"}
    assert seed["event"] == {"kind": "state", "dataset": "elk.health", "action": "health-check",
                             "outcome": "success"}
    assert seed["message"] == "api-service-1 healthy" and seed["labels"] == {"uptime": 12.5}
    down = shaper.health({"status": "unhealthy", "error": "connect ECONNREFUSED 10.0.0.3:5432"}, SVC)
    assert down["health"]["status"] == "unhealthy" and down["event"]["outcome"] == "failure"
    assert down["error"] == {"message": "connect ECONNREFUSED 10.0.0.3:5432"}
    probe = shaper.health({"health": {"status": "unhealthy"}, "event": {"duration": 5, "dataset": "x"},
                           "service": {"name": SVC, "node": {"name": "api-service-2"}},
                           "http": {"response": {"status_code": 503}}}, SVC)
    assert probe["event"] == {"duration": 5, "kind": "state", "dataset": "elk.health", "action": "health-check",
                              "outcome": "failure"}
    for bad in ({"message": "x"}, {"status": 1}, {"status": "meh"},
                {"status": "ok", "http": {"response": {"status_code": "200"}}}):
        with pytest.raises(Reject):
            shaper.health(bad, SVC)


def test_health_status_words_read_as_in_the_contract(shaper: Shaper) -> None:
    # `degraded` was unhealthy here and healthy in the prober; now degraded everywhere
    def status(raw: dict[str, Any]) -> tuple[str, str]:
        rec = shaper.health(raw, SVC)
        return rec["health"]["status"], rec["event"]["outcome"]
    assert status({"status": "degraded"}) == ("degraded", "failure")
    assert status({"status": "Yellow"}) == ("degraded", "failure")
    assert status({"health": {"status": "warn"}}) == ("degraded", "failure")
    assert status({"status": "ok"}) == ("healthy", "success")
    assert status({"status": "down"}) == ("unhealthy", "failure")
    # an answer outside 2xx is unhealthy whatever its body says (the prober's rule)
    assert status({"status": "healthy", "http": {"response": {"status_code": 503}}}) == ("unhealthy", "failure")
    assert status({"status": "degraded", "http.response.status_code": 200}) == ("degraded", "failure")


def test_odd_names_go_to_extra_not_labels(shaper: Shaper) -> None:
    rec = shaper.log({"message": "x", "": 1, ".": "a", "labels": {" ": True, "ok.key": 2}}, SVC)
    assert rec["labels"] == {"ok_key": 2}
    assert rec["extra"] == {"": 1, ".": "a", " ": True}


def test_every_ecs_field_copied_from_a_request_is_redacted(shaper: Shaper) -> None:
    raw = {"message": "x",
           "user": {"name": "ann", "password": "hunter2", "changes": {"api_key": "k1"}},
           "process": {"command_line": "worker --db postgres://admin:hunter2@db:5432/app", "pid": 7},
           "event": {"original": "GET / HTTP/1.1\r\nAuthorization: Bearer sk-live-123", "action": "login"},
           "host": {"name": "h1", "token": "t0k"},
           "log": {"logger": "a", "origin": {"file": {"name": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln"}}},
           "tags": ["amqp://guest:guest@rabbit/", "plain"],
           "error": {"message": "connect redis://:s3cret@cache:6379 failed"}}
    rec = shaper.log(raw, SVC)
    line = orjson.dumps(rec)
    for secret in (b"hunter2", b"k1", b"sk-live-123", b"t0k", b"eyJzdWIiOiIxIn0", b"guest@", b"s3cret"):
        assert secret not in line, secret
    assert rec["user"] == {"name": "ann", "password": REDACTED, "changes": {"api_key": REDACTED}}
    assert rec["process"] == {"command_line": f"worker --db postgres://admin:{REDACTED}@db:5432/app", "pid": 7}
    assert rec["event"]["original"].endswith(f"Authorization: Bearer {REDACTED}")
    assert rec["event"]["action"] == "login" and rec["host"]["name"] == "h1"
    assert rec["tags"] == [f"amqp://guest:{REDACTED}@rabbit/", "plain"]
    assert raw["user"]["password"] == "hunter2"  # the request's objects are not modified
    health = shaper.health({"health": {"status": "up", "message": "db postgres://u:pw@db down"}}, SVC)
    assert health["health"]["message"] == f"db postgres://u:{REDACTED}@db down"


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_timestamp_that_overflows_in_utc_is_a_rejection(shaper: Shaper, value: str) -> None:
    with pytest.raises(Reject, match="@timestamp"):
        shaper.log({"message": "x", "@timestamp": value}, SVC)


@pytest.mark.parametrize("sent", ["1970-01-01T00:00:00.000Z", 1, "2554-07-21T23:34:33.709Z", "0001-01-01T00:00:00Z"])
def test_an_implausible_time_becomes_the_receive_time_with_the_original_kept(shaper: Shaper, sent: object) -> None:
    rec = shaper.log({"@timestamp": sent, "message": "m", "labels": {"k": 1}}, SVC)
    # no time of ours: the shipper takes Kafka's (the receive time), and a retry is the same bytes
    assert rec.get("@timestamp") is None
    assert rec == shaper.log({"@timestamp": sent, "message": "m", "labels": {"k": 1}}, SVC)
    assert rec["labels"] == {"k": 1, "original_timestamp": str(sent), "timestamp_out_of_range": True}
    ok = shaper.log({"@timestamp": "2026-01-02T03:04:05.000Z", "message": "m"}, SVC)
    assert ok["@timestamp"] == "2026-01-02T03:04:05.000Z" and "labels" not in ok


def test_a_node_name_of_another_known_service_is_refused() -> None:
    shaper = Shaper(Redactor(True), known_services=lambda: ["api-service", "auth-service"])
    with pytest.raises(OtherService):
        shaper.log({"message": "m", "service": {"node": {"name": "auth-service-1"}}}, SVC)
    for node in ("api-service-2", "vm", "web-3"):
        assert shaper.log({"message": "m", "service": {"node": {"name": node}}}, SVC)["service"]["node"] == \
            {"name": node}
