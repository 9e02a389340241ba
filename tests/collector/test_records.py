"""Every record kind is one ECS line; caller fields never clobber ECS fields; exceptions inline."""

from __future__ import annotations

import asyncio
import logging

import pytest

import collector
from collector.contract.ecs import ECS_VERSION
from tests.collector.conftest import assert_ecs


def _lines() -> list[bytes]:
    return collector.outputs()["memory"].records


def test_log_record_is_ecs_and_fields_go_to_labels_or_extra(memlog):
    log = collector.get_logger("app.users")
    log.info("user logged in", user_id=42, ok=True, ratio=0.5, name="ann", tags=["a"], service="evil",
             message="nope", **{"a.b": 1})
    rec = assert_ecs(_lines()[0])
    assert rec["message"] == "user logged in"
    assert rec["log.level"] == "info"
    assert rec["log"]["logger"] == "app.users"
    assert rec["service"] == {"name": "api-service", "version": "1.2.3", "environment": "test",
                              "node": {"name": rec["host"]["name"]}}
    assert rec["labels"] == {"user_id": 42, "ok": True, "ratio": 0.5, "name": "ann", "service": "evil",
                             "message": "nope", "a_b": 1}
    assert rec["extra"] == {"tags": ["a"]}
    assert rec["ecs.version"] == ECS_VERSION


def test_every_level_and_bound_context(memlog):
    log = collector.get_logger("x").bind(component="db")
    log.debug("d")
    log.warning("w %s", "arg")
    log.error("e")
    log.critical("c")
    recs = [assert_ecs(line) for line in _lines()]
    assert [r["log.level"] for r in recs] == ["debug", "warning", "error", "critical"]
    assert recs[1]["message"] == "w arg"
    assert all(r["labels"]["component"] == "db" for r in recs)


def test_bind_unbind_new_and_the_level_aliases(memlog):
    base = collector.get_logger("x", a=1)
    bound = base.bind(b=2)
    assert base == collector.get_logger("x", a=1)  # bind returns a new logger; the old one is intact
    bound.unbind("a").warn("only b")
    bound.try_unbind("zzz").new(c=3).fatal("only c", c=4)  # a call's field wins over the bound one
    bound.log("WARN", "by alias")
    bound.log(logging.ERROR, "by number")
    with pytest.raises(KeyError):
        bound.unbind("zzz")
    recs = [assert_ecs(line) for line in _lines()]
    assert [(r["log.level"], r["labels"]) for r in recs] == [
        ("warning", {"b": 2}), ("critical", {"c": 4}), ("warning", {"a": 1, "b": 2}),
        ("error", {"a": 1, "b": 2})]


def test_generated_level_methods_check_the_level_first(memlog, monkeypatch):
    collector.configure(service="api-service", outputs="memory", level="error", metrics_interval=0)
    seen: list[str] = []
    monkeypatch.setattr("collector.logger.emit", lambda name, level, *rest: seen.append(level))
    log = collector.get_logger("x")
    for method in (log.debug, log.info, log.warning, log.warn, log.error, log.critical, log.fatal):
        method("m")
    assert seen == ["error", "critical", "critical"]
    assert [m.__name__ for m in (log.debug, log.info, log.warning, log.error, log.critical)] == [
        "debug", "info", "warning", "error", "critical"]


def test_level_filter(memlog):
    collector.configure(service="api-service", outputs="memory", level="warning", metrics_interval=0)
    log = collector.get_logger("x")
    log.info("hidden")
    logging.getLogger("lib").info("hidden too")
    log.warning("shown")
    assert [assert_ecs(line)["message"] for line in _lines()] == ["shown"]


def test_exception_is_inside_the_single_line(memlog):
    log = collector.get_logger("x")
    try:
        raise ValueError("bad value\nsecond line")
    except ValueError:
        log.exception("failed")
    try:
        raise KeyError("k")
    except KeyError as exc:
        logging.getLogger("lib").error("stdlib failed", exc_info=exc)
    first, second = (assert_ecs(line) for line in _lines())
    assert first["log.level"] == "error"
    assert first["error"]["type"] == "ValueError"
    assert first["error"]["message"] == "bad value\nsecond line"
    assert "Traceback (most recent call last)" in first["error"]["stack_trace"]
    assert 'raise ValueError("bad value' in first["error"]["stack_trace"]
    assert second["error"]["type"] == "KeyError"
    assert second["log"]["logger"] == "lib"


def test_stdlib_bridge_same_stream(memlog, request):
    # an in-process uvicorn run by an earlier test (log_level="warning") leaves this logger at WARNING
    uvicorn_error = logging.getLogger("uvicorn.error")
    request.addfinalizer(lambda level=uvicorn_error.level: uvicorn_error.setLevel(level))
    uvicorn_error.setLevel(logging.NOTSET)
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 7)
    logging.getLogger("sqlalchemy.engine").warning("slow query", extra={"duration_ms": 12.5, "rows": [1]})
    a, b = (assert_ecs(line) for line in _lines())
    assert a["message"] == "Started server process [7]"
    assert a["log"]["logger"] == "uvicorn.error"
    assert b["log.level"] == "warning"
    assert b["labels"] == {"duration_ms": 12.5}
    assert b["extra"] == {"rows": [1]}


def test_ecs_kwarg_adds_ecs_fields_but_cannot_replace_core_ones(memlog):
    collector.get_logger("x").info("req", ecs={"url": {"path": "/a"}, "event": {"duration": 5},
                                               "service": {"name": "other"}, "@timestamp": "x"})
    rec = assert_ecs(_lines()[0])
    assert rec["url"] == {"path": "/a"}
    assert rec["event"] == {"dataset": "api_service", "duration": 5}
    assert rec["service"]["name"] == "api-service"
    # the shared static object was not mutated by the merge
    collector.get_logger("x").info("next")
    assert assert_ecs(_lines()[1])["event"] == {"dataset": "api_service"}


def test_unserializable_values_never_raise(memlog):
    class Weird:
        def __repr__(self) -> str:
            return "weird"

        def __str__(self) -> str:
            raise RuntimeError("no str")

    log = collector.get_logger("x")
    log.info("obj", thing=object(), keys={1: "int key"})
    log.info(Weird())  # str() raises: its repr() is the message
    rec = assert_ecs(_lines()[0])
    assert rec["extra"]["keys"] == {"1": "int key"}
    assert assert_ecs(_lines()[1])["message"] == "weird"
    assert collector.stats()["internal_errors"] == 0


def test_logger_before_configure_works():
    collector.shutdown()
    early = collector.get_logger("early")  # module-level loggers are created at import time
    collector.configure(service="api-service", outputs="memory", metrics_interval=0)
    try:
        early.info("after configure")
        assert assert_ecs(_lines()[0])["log"]["logger"] == "early"
    finally:
        collector.shutdown()


def test_invalid_configuration_names_the_setting():
    with pytest.raises(collector.ConfigError, match=r"COLLECTOR_QUEUE_SIZE: "):
        collector.configure(queue_size=0)
    with pytest.raises(collector.ConfigError, match=r"COLLECTOR_OUTPUTS: .*unknown output"):
        collector.configure(outputs="stdout,carrier-pigeon")
    with pytest.raises(collector.ConfigError, match=r"COLLECTOR_INGEST_URL"):
        collector.configure(outputs="http")
    with pytest.raises(collector.ConfigError, match=r"COLLECTOR_REDACT_PATTERNS: invalid regular expression"):
        collector.configure(redact_patterns=["("])


def test_env_vars_configure(monkeypatch):
    monkeypatch.setenv("COLLECTOR_SERVICE", "api-service")
    monkeypatch.setenv("COLLECTOR_ENVIRONMENT", "production")
    monkeypatch.setenv("COLLECTOR_OUTPUTS", "memory")
    monkeypatch.setenv("COLLECTOR_METRICS_INTERVAL", "0")
    monkeypatch.setenv("COLLECTOR_LEVEL", "nope")
    with pytest.raises(collector.ConfigError, match="COLLECTOR_LEVEL"):
        collector.configure()
    monkeypatch.setenv("COLLECTOR_LEVEL", "info")
    collector.configure()
    try:
        collector.get_logger("x").info("hi")
        assert assert_ecs(_lines()[0])["service"]["environment"] == "production"
    finally:
        collector.shutdown()


async def test_context_follows_asyncio_tasks(memlog):
    log = collector.get_logger("x")

    async def handle(request_id: str, traceparent: str | None) -> dict[str, str]:
        with collector.request_context(request_id, traceparent) as ids:
            await asyncio.sleep(0.01)
            log.info("start", req=request_id)

            async def child() -> None:
                await asyncio.sleep(0.01)
                log.info("child", req=request_id)
            await asyncio.gather(asyncio.create_task(child()), asyncio.sleep(0.005))
            return ids

    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    ids = await asyncio.gather(*(handle(f"r{i}", tp if i == 0 else None) for i in range(5)))
    log.info("outside")
    recs = [r for r in map(assert_ecs, _lines()) if r["log"]["logger"] == "x"]  # not asyncio's own
    assert len(recs) == 11
    for rec in recs[:-1]:
        mine = ids[int(rec["labels"]["req"][1:])]
        assert rec["http"]["request"]["id"] == mine["request_id"]
        assert rec["trace"]["id"] == mine["trace_id"]
        assert rec["transaction"]["id"] == rec["span"]["id"] == mine["transaction_id"]
    assert ids[0]["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert len({i["trace_id"] for i in ids}) == 5
    assert "trace" not in recs[-1] and "http" not in recs[-1]


def test_traceparent_parser():
    tp = collector.parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    assert tp is not None and tp.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736" and tp.sampled
    assert tp.parent_id == "00f067aa0ba902b7"
    for bad in ("", "garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01"):
        assert collector.parse_traceparent(bad) is None
    future = collector.parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-extra")
    assert future is not None and not future.sampled
