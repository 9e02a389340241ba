"""Nothing a caller passes can make a log call raise: objects whose __str__ and __repr__ raise,
format strings that do not match their arguments, odd levels and exc_info values. The record is
still written, with what could be rendered."""

from __future__ import annotations

import logging
from typing import Any

import collector
from collector.state import STATE
from tests.collector.conftest import assert_ecs


class Hostile:
    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    def __format__(self, spec: str) -> str:
        raise RuntimeError("no format")


class BrokenError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str")


def _messages() -> list[str]:
    return [assert_ecs(line)["message"] for line in collector.outputs()["memory"].records]


def test_structlog_style_calls_never_raise(memlog: Any) -> None:
    log = collector.get_logger("x")
    log.info("user %s", Hostile())
    log.info("user %s %s", "ann")  # too few arguments
    log.warning(Hostile())
    log.error("with field", thing=Hostile(), nested={"k": [Hostile()]})
    log.bind(ctx=Hostile()).info("bound %d", Hostile())
    log.log(None, "no level")  # type: ignore[arg-type]
    log.log(3.5, "float level")  # type: ignore[arg-type]
    log.info("odd exc_info", exc_info=(1, 2, 3))
    try:
        raise BrokenError()
    except BrokenError:
        log.exception("broken %s", Hostile())
    messages = _messages()
    assert messages[:3] == ["user %s <unprintable Hostile>", "user %s %s ann", "<unprintable Hostile>"]
    recs = [assert_ecs(line) for line in collector.outputs()["memory"].records]
    assert recs[3]["extra"] == {"thing": "<unprintable Hostile>", "nested": {"k": ["<unprintable Hostile>"]}}
    assert messages[4] == "bound %d <unprintable Hostile>" and recs[4]["extra"]["ctx"] == "<unprintable Hostile>"
    assert messages[5:8] == ["no level", "float level", "odd exc_info"]
    assert recs[8]["error"]["type"].endswith("BrokenError") and "Traceback" in recs[8]["error"]["stack_trace"]
    assert len(recs) == 9 and collector.stats()["internal_errors"] == 0


def test_stdlib_records_through_the_bridge_never_raise(memlog: Any) -> None:
    # straight to the bridge: pytest's own capture handler on the root logger would raise first
    handler = STATE.handler
    assert handler is not None
    for msg, args in (("user %s", (Hostile(),)), (Hostile(), ()), ("%(a)s", ({"a": Hostile()},))):
        handler.handle(logging.LogRecord("std", logging.WARNING, __file__, 1, msg, args, None))
    assert _messages() == ["user %s <unprintable Hostile>", "<unprintable Hostile>", "%(a)s <unprintable dict>"]
