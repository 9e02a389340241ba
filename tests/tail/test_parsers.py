"""Each format family's parser, table-driven (pure functions); the real programs' own output is
tested in test_programs.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from collector.tail.parsers import parse, unparsed

PINO_HTTP = orjson.dumps({
    "level": 30, "time": 1796205600123, "pid": 7, "hostname": "api-1",
    "req": {"id": 42, "method": "GET", "url": "/users?id=3", "headers": {"user-agent": "curl/8", "host": "x"},
            "remoteAddress": "::ffff:127.0.0.1", "remotePort": 50000},
    "res": {"statusCode": 503}, "responseTime": 12.5, "msg": "request completed"}).decode()


@pytest.mark.parametrize(("line", "fmt", "want"), [
    # ECS JSON, as this library and ecs-pino-format write it: kept, level normalised
    ('{"@timestamp":"2026-12-02T10:00:00.123Z","log.level":"WARN","message":"m","ecs.version":"8.10.0",'
     '"service":{"name":"api"}}', "auto",
     {"@timestamp": "2026-12-02T10:00:00.123Z", "log.level": "warning", "message": "m", "service": {"name": "api"}}),
    # pino: numeric level, epoch-ms time, msg, err
    ('{"level":50,"time":1796205600123,"pid":1,"hostname":"h","msg":"boom","err":{"type":"Error",'
     '"message":"boom","stack":"Error: boom\\n    at f (a.js:1:1)"}}', "auto",
     {"@timestamp": "2026-12-02T10:00:00.123Z", "log.level": "error", "message": "boom",
      "error": {"type": "Error", "message": "boom", "stack_trace": "Error: boom\n    at f (a.js:1:1)"},
      "process": {"pid": 1}, "host": {"hostname": "h"}}),
    # pino-http: req/res/responseTime -> http.*, url.*, source.*, event.duration (ns), request id
    (PINO_HTTP, "auto",
     {"@timestamp": "2026-12-02T10:00:00.123Z", "log.level": "info", "message": "request completed",
      "http": {"request": {"method": "GET", "id": "42"}, "response": {"status_code": 503}},
      "url": {"original": "/users?id=3", "path": "/users", "query": "id=3"},
      "user_agent": {"original": "curl/8"},
      "source": {"address": "::ffff:127.0.0.1", "ip": "127.0.0.1", "port": 50000},
      "event": {"duration": 12_500_000}}),
    # bunyan
    ('{"name":"auth","hostname":"h","pid":3,"level":40,"msg":"slow","time":"2026-12-02T10:00:00.000Z","v":0}',
     "auto", {"@timestamp": "2026-12-02T10:00:00.000Z", "log.level": "warning", "message": "slow",
              "log": {"logger": "auth"}, "process": {"pid": 3}, "host": {"hostname": "h"}}),
    # winston json + timestamp + errors({stack: true}); other keys -> labels / extra
    ('{"level":"error","message":"db down","timestamp":"2026-12-02T10:00:00.000Z","stack":"Error: x",'
     '"user":"u1","ctx":{"a":1}}', "auto",
     {"@timestamp": "2026-12-02T10:00:00.000Z", "log.level": "error", "message": "db down",
      "error": {"stack_trace": "Error: x"}, "labels": {"user": "u1"}, "extra": {"ctx": {"a": 1}}}),
    # nginx JSON format of docs/ingest.md
    ('{"@timestamp":"2026-12-02T10:00:00+00:00","http.request.method":"GET","url.original":"/a",'
     '"http.response.status_code":502,"request_time":"0.250"}', "auto",
     {"@timestamp": "2026-12-02T10:00:00.000Z", "log.level": "error", "message": "GET /a 502",
      "event.duration": 250_000_000}),
    # nginx combined
    ('10.0.0.1 - bob [02/Dec/2026:11:00:00 +0100] "POST /login HTTP/1.1" 401 17 "https://r/" "Mozilla/5.0"', "auto",
     {"@timestamp": "2026-12-02T10:00:00.000Z", "log.level": "warning", "source": {"address": "10.0.0.1",
      "ip": "10.0.0.1"}, "user": {"name": "bob"}, "url": {"original": "/login", "path": "/login"},
      "http": {"request": {"method": "POST", "referrer": "https://r/"}, "version": "1.1",
               "response": {"status_code": 401, "body": {"bytes": 17}}},
      "user_agent": {"original": "Mozilla/5.0"}}),
    # nginx error log
    ('2026/12/02 10:00:00 [error] 12#12: *3 open() "/srv/x" failed (2: No such file or directory), '
     'client: 127.0.0.1, server: localhost, request: "GET /x HTTP/1.1", host: "localhost:8080"', "auto",
     {"@timestamp": "2026-12-02T10:00:00.000Z", "log.level": "error", "process": {"pid": 12, "thread": {"id": 12}},
      "source": {"address": "127.0.0.1", "ip": "127.0.0.1"}, "url": {"original": "/x", "path": "/x",
      "domain": "localhost:8080"}, "http": {"request": {"method": "GET"}, "version": "1.1"},
      "labels": {"connection": 3, "server": "localhost"}}),
    # PostgreSQL default stderr (%m [%p]) and Debian's (%m [%p] %q%u@%d)
    ("2026-12-02 10:00:00.123 UTC [4242] LOG:  database system is ready to accept connections", "auto",
     {"@timestamp": "2026-12-02T10:00:00.123Z", "log.level": "info",
      "message": "database system is ready to accept connections", "process": {"pid": 4242},
      "labels": {"pg_severity": "LOG"}}),
    ("2026-12-02 10:00:00.123 UTC [77] app@shop FATAL:  password authentication failed", "postgres",
     {"log.level": "critical", "user": {"name": "app"}, "labels": {"pg_severity": "FATAL", "database": "shop"}}),
    # Redis
    ("1:M 02 Dec 2026 10:00:00.123 # WARNING overcommit_memory is set to 0", "auto",
     {"@timestamp": "2026-12-02T10:00:00.123Z", "log.level": "warning",
      "message": "WARNING overcommit_memory is set to 0", "process": {"pid": 1}, "labels": {"redis_role": "master"}}),
    ("1:C 02 Dec 2026 10:00:00.123 * Ready", "redis", {"log.level": "info", "labels": {"redis_role": "child"}}),
    # plain text: time and level sniffed
    ("2026-12-02 10:00:00,250 WARNING app: disk 91% full", "auto",
     {"@timestamp": "2026-12-02T10:00:00.250Z", "log.level": "warning",
      "message": "2026-12-02 10:00:00,250 WARNING app: disk 91% full"}),
    ("ERROR:root:payment failed", "auto", {"log.level": "error"}),
    ("time=2026 level=warn msg=x", "plain", {"log.level": "warning"}),
    ("just words, no error level here", "auto", {"message": "just words, no error level here"}),
])
def test_formats(line: str, fmt: str, want: dict) -> None:
    got = parse(line, fmt)
    assert got is not None
    for key, value in want.items():
        assert got.get(key) == value, key
    if "log.level" not in want and fmt in ("auto", "plain") and "level" not in line.lower():
        assert "log.level" not in got


@pytest.mark.parametrize(("line", "fmt"), [
    ("not an nginx line", "nginx"),
    ("not an error log", "nginx_error"),
    ("2026-12-02 nope", "postgres"),
    ("1:Q bad", "redis"),
    ('{"truncated": ', "pino"),
    ("[1, 2]", "json"),
])
def test_a_line_of_another_format_is_none_then_shipped_whole(line: str, fmt: str) -> None:
    assert parse(line, fmt) is None
    got = unparsed(line)
    assert got["message"] == line and got["event"] == {"original": line} and got["labels"] == {"unparsed": True}


@pytest.mark.parametrize(("fn", "text", "want"), [
    ("clf", "02/Dec/2026:11:00:00 +0100", "2026-12-02T10:00:00.000Z"),
    ("clf", "31/Dec/2026:23:30:00 -0130", "2027-01-01T01:00:00.000Z"),
    ("clf", "02/Foo/2026:11:00:00 +0100", None),
    ("day_month_year", "02 Dec 2026 10:00:00.123", "2026-12-02T10:00:00.123Z"),
    ("day_month_year", "02 Dec 2026 10:00:61.123", None),
    ("slashed", "2026/12/02 10:00:00", "2026-12-02T10:00:00.000Z"),
    ("iso", "2026-12-02T10:00:00.5+02:00", "2026-12-02T08:00:00.500Z"),
])
def test_program_times(fn: str, text: str, want: str | None) -> None:
    from collector.tail.parsers import times

    assert getattr(times, fn)(text) == want


# -- issue 22, item 8 --------------------------------------------------------------------------------------
@pytest.fixture
def zone() -> Iterator[Any]:
    from collector.tail.parsers import times

    yield times.set_zone
    times.set_zone(None)


@pytest.mark.parametrize("addr", ["::1", "2001:db8::1", "fe80::1ff:fe23:4567:890a"])
def test_nginx_from_ipv6_clients_in_auto(addr: str) -> None:
    line = f'{addr} - - [02/Dec/2026:11:00:00 +0100] "GET /api/users?id=3 HTTP/1.1" 404 17 "-" "curl/8"'
    got = parse(line, "auto")
    assert got is not None and got["http"]["response"]["status_code"] == 404
    assert got["url"]["path"] == "/api/users" and got["log.level"] == "warning"
    assert got["@timestamp"] == "2026-12-02T10:00:00.000Z" and got["source"]["ip"] == addr


PY_TRACE = ("Traceback (most recent call last):\n  File \"/srv/app.py\", line 3, in pay\n    charge()\n"
            "KeyError: 'card'\n\nThe above exception was the direct cause of the following exception:\n\n"
            "Traceback (most recent call last):\n  File \"/srv/app.py\", line 5, in pay\n"
            "    raise ValueError(\"bad card\") from e\nValueError: bad card")
JAVA_TRACE = ("java.lang.IllegalStateException: no connection\n\tat com.shop.Db.get(Db.java:12)\n"
              "\tat com.shop.Main.main(Main.java:5)\nCaused by: java.net.ConnectException: refused\n\t... 2 more")
GO_TRACE = ("panic: runtime error: index out of range [5] with length 3\n\ngoroutine 1 [running]:\n"
            "main.main()\n\t/srv/main.go:8 +0x1d\nexit status 2")


@pytest.mark.parametrize(("text", "want"), [
    ("2026-12-02 10:00:00,250 ERROR app: payment failed\n" + PY_TRACE,
     {"type": "ValueError", "message": "bad card", "stack_trace": PY_TRACE}),
    ("2026-12-02 10:00:00,250 ERROR app: payment failed\n" + JAVA_TRACE,
     {"type": "java.lang.IllegalStateException", "message": "no connection", "stack_trace": JAVA_TRACE}),
    (GO_TRACE, {"type": "panic", "message": "runtime error: index out of range [5] with length 3",
                "stack_trace": GO_TRACE}),
])
def test_error_fields_from_joined_traces(text: str, want: dict[str, str]) -> None:
    got = parse(text, "auto")
    assert got is not None and got["error"] == want
    assert got["log.level"] in ("error", "critical")


def test_zoneless_times_in_the_host_zone_or_the_configured_one(zone: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        zone(None)  # the host's zone
        assert parse("2026-12-02 10:00:00,250 INFO app: up", "auto")["@timestamp"] == "2026-12-02T15:00:00.250Z"
        zone("Europe/Berlin")  # configured: summer time applies in July
        assert parse("1:M 02 Jul 2026 10:00:00.123 * Ready", "auto")["@timestamp"] == "2026-07-02T08:00:00.123Z"
        assert parse('2026/12/02 10:00:00 [error] 12#12: boom', "auto")["@timestamp"] == "2026-12-02T09:00:00.000Z"
        assert parse("2026-12-02T10:00:00.5+02:00 INFO x", "auto")["@timestamp"] == "2026-12-02T08:00:00.500Z"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


@pytest.mark.parametrize(("line", "want"), [
    ("2026-12-02 10:00:00.123 CET [4242] LOG:  checkpoint starting: time",
     {"@timestamp": "2026-12-02T09:00:00.123Z", "process": {"pid": 4242}}),
    ("2026-07-02 10:00:00 EDT [7] LOG:  ready", {"@timestamp": "2026-07-02T14:00:00.000Z"}),
    ("2026-12-02 10:00:00 CET [4242]: [3-1] user=app,db=shop,app=psql,client=127.0.0.1 ERROR:  relation \"x\" "
     "does not exist", {"@timestamp": "2026-12-02T09:00:00.000Z", "log.level": "error", "user": {"name": "app"},
                        "labels": {"pg_severity": "ERROR", "database": "shop"},
                        "message": "relation \"x\" does not exist"}),
    ("2026-12-02 10:00:00 UTC [4242-1] LOG:  ready", {"@timestamp": "2026-12-02T10:00:00.000Z"}),
])
def test_postgres_zone_names_and_prefixes(line: str, want: dict[str, Any]) -> None:
    got = parse(line, "auto")
    assert got is not None
    for key, value in want.items():
        assert got[key] == value, key


def test_pino_err_fields_kept_and_custom_levels() -> None:
    err = {"type": "Error", "message": "connect ECONNREFUSED 127.0.0.1:5432", "stack": "Error: connect\n    at x",
           "errno": -111, "code": "ECONNREFUSED", "syscall": "connect", "address": "127.0.0.1", "port": 5432,
           "cause": {"message": "socket closed"}}
    got = parse(orjson.dumps({"level": 35, "time": 1796205600123, "msg": "db down", "err": err}).decode(), "auto")
    assert got is not None
    assert got["error"] == {"type": "Error", "message": err["message"], "stack_trace": err["stack"],
                            "code": "ECONNREFUSED"}
    assert got["extra"]["err"] == {"errno": -111, "syscall": "connect", "address": "127.0.0.1", "port": 5432,
                                   "cause": {"message": "socket closed"}}
    assert got["log.level"] == "warning" and got["labels"]["level"] == 35
    assert parse('{"level":25,"time":1,"msg":"m"}', "auto")["log.level"] == "info"
