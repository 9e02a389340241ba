"""Records are deterministic: the same line of the same file generation gives the same id and the
same bytes (a re-send collapses in the index), and the raw fast path writes exactly what the
general path writes."""

from __future__ import annotations

import os
from pathlib import Path

import orjson

from collector.tail.multiline import Joined
from collector.tail.reader import FileTail, Source
from collector.tail.record import Builder
from collector.tail.registry import Entry
from collector.tail.settings import Multiline


def _tail(path: Path, fmt: str, gen: int = 0) -> FileTail:
    fd = os.open(path, os.O_RDONLY)
    source = Source(service="api-service", fmt=fmt, multiline=Multiline(mode="off"), node="api-service-1")
    tail = FileTail(str(path), fd, os.fstat(fd), Entry(path=str(path), gen=gen), source, 1 << 20)
    tail.read(1 << 20)
    return tail


def test_same_line_same_bytes_and_ids_by_generation(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text('first line\n50%s done \\ "quoted" \u00e9\n')
    builder = Builder("host-1")
    one, two = _tail(log, "raw"), _tail(log, "raw")
    joined = Joined(11, 37, '50%s done \\ "quoted" \u00e9', None)
    assert builder.build(one, joined) == builder.build(two, joined)
    template = builder.raw_template(one)
    fast = template % (orjson.dumps(joined.text), joined.start, joined.start)
    assert fast == builder.build(one, joined)[1]  # byte for byte
    rec = orjson.loads(fast)
    assert rec["message"] == joined.text and rec["log"] == {"file": {"path": str(log)}, "offset": 11}
    assert rec["service"] == {"name": "api-service", "node": {"name": "api-service-1"}}
    other_gen = _tail(log, "raw", gen=1)
    assert orjson.loads(builder.build(other_gen, joined)[1])["event"]["id"] != rec["event"]["id"]
    assert one.line_id(11) != one.line_id(37)


def test_parsed_record_keyed_by_its_own_service(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text("x\n")
    tail = _tail(log, "auto")
    line = '{"@timestamp":"2026-12-02T10:00:00.000Z","log.level":"info","message":"m","service.name":"billing"}'
    key, value = Builder("h").build(tail, Joined(0, 2, line, None))
    rec = orjson.loads(value)
    assert key == b"billing" and "service" not in rec and rec["service.name"] == "billing"
    key, value = Builder("h").build(tail, Joined(0, 2, "no format at all", None))
    assert key == b"api-service" and orjson.loads(value)["log.level"] == "info"
