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


_NGINX = [
    '10.0.3.7 - - [02/Dec/2026:10:00:05 +0000] "GET /api/orders?id=42 HTTP/1.1" 200 512 "-" "Mozilla/5.0 (X11)"',
    '10.0.3.7 - alice [02/Dec/2026:10:00:05 +0100] "POST /login HTTP/2.0" 401 0 "https://a.example/x?y=1" "curl/8"',
    '::1 - - [02/Dec/2026:10:00:05 +0000] "GET /health HTTP/1.1" 503 - "-" "-"',
    '2001:db8::1 - - [02/Dec/2026:23:59:59 -0700] "GET / HTTP/1.0" 404 0',
    'example.org - - [02/Dec/2026:10:00:05 +0000] "GET /a?b=c&d=%41 HTTP/1.1" 200 007 "-" "x"',
    '10.0.0.1 - - [02/Dec/2026:10:00:05 +0000] "GET /no-version" 200 1 "-" "x" trailing words',
    '10.0.0.1 - - [02/Dec/2026:10:00:05 +0000] "GET /ok?" 200 1 "-" "x"',
    '10.0.0.1 - - [02/Dec/2026:10:00:05 +0000] "-" 400 0 "-" "-"',
    '10.0.0.1 - - [not a time] "GET / HTTP/1.1" 200 1 "-" "x"',
    '10.0.0.1 - - [02/Dec/2026:10:00:05 +0000] "GET /\\"quoted\\" HTTP/1.1" 200 1 "-" "a \\x22 b"',
    '10.0.0.1 - - [02/Dec/2026:10:00:05 +0000] "GET /caf\u00e9 HTTP/1.1" 200 1 "-" "\u00e9"',
    '10.0.0.1 - - [02/Dec/2026:10:00:05 +0000] "GET /\ttab HTTP/1.1" 200 1 "-" "x"',
    '10.0.0.1 - - [02/Dec/2026:10:00:05 +0000] "GET /\x7f HTTP/1.1" 200 1 "-" "x"',
    '1"0 - - [02/Dec/2026:10:00:05 +0000] "GET / HTTP/1.1" 200 1 "-" "x"',
    '10.0.0.1 - a"b [02/Dec/2026:10:00:05 +0000] "GET / HTTP/1.1" 200 1 "-" "x"',
    '10.0.0.1 - - [02/Dec/2026:10:00:05 +0000] "GET /%s%d%% HTTP/1.1" 200 1 "%s" "{}"',
    '2026-12-02 10:00:00 - - [02/Dec/2026:10:00:05 +0000] "GET / HTTP/1.1" 200 1',
    '12:34 - - [02/Dec/2026:10:00:05 +0000] "GET / HTTP/1.1" 200 1',
    '2026/12/02 10:00:00 [error] 7#7: *1 boom, client: 10.0.0.1',
    "10.0.0.1 - - [02/Dec/2026:10:00:05 +0000] \"GET / HTTP/1.1\" 2000 1",
    "plain text line with no format",
]
_PINO = [
    '{"level":30,"time":1796205600000,"pid":7,"hostname":"api-1","reqId":1,"msg":"order 1 processed"}',
    '{"level":50,"time":1796205600999,"pid":7,"hostname":"api-1","msg":"no labels"}',
    '{"level":60,"time":1796205600001,"pid":7,"hostname":"h\\"x\\\\y\\u0001","a.b":1,"a_b":2,"f":1.5,"t":true,'
    '"n":null,"s":"caf\\u00e9 \\"q\\"","msg":"m\\n2"}',
    '{"level":35,"time":1796205600000,"pid":7,"hostname":"h","msg":"custom level"}',
    '{"level":30,"time":1796205600000.5,"pid":7,"hostname":"h","msg":"float time"}',
    '{"level":30,"time":"2026-12-02T10:00:00Z","pid":7,"hostname":"h","msg":"iso time"}',
    '{"level":30,"time":99999999999999999999,"pid":7,"hostname":"h","msg":"out of range"}',
    '{"level":30,"time":1796205600000,"pid":"7","hostname":"h","msg":"pid text"}',
    '{"level":30,"time":1796205600000,"pid":7,"msg":"no hostname"}',
    '{"level":30,"time":1796205600000,"pid":7,"hostname":"h"}',
    '{"level":30,"time":1796205600000,"pid":7,"hostname":"h","msg":"nested","ctx":{"a":1}}',
    '{"level":30,"time":1796205600000,"pid":7,"hostname":"h","msg":"named","name":"app"}',
    '{"level":50,"time":1796205600000,"pid":7,"hostname":"h","msg":"e","err":{"type":"Error","message":"x"}}',
    '{"level":30,"time":1796205600000,"pid":7,"hostname":"h","msg":"r","req":{"method":"GET"},"res":{}}',
    '{"level":30,"time":1796205600000,"pid":7,"hostname":"h","msg":"m","message":"other"}',
    '{"level":30,"time":1796205600000,"pid":7,"hostname":"h","msg":"m","v":0,"name":"bunyan"}',
    '{"level":true,"time":1796205600000,"pid":7,"hostname":"h","msg":"bool level"}',
    '{"@timestamp":"2026-12-02T10:00:00.000Z","log.level":"info","message":"ecs","ecs.version":"8.11"}',
    '{"level":30,"time":1796205600000,"pid":7,"hostname":"h","msg":"x","http.request.method":"GET"}',
    '{"level":"info","message":"winston","time":1796205600000}',
    '[1, 2, 3]',
    '{"level":30,"time":1796205600000,"pid":7,"hostname":"h","msg":"broken"',
    '{}',
]


def test_fast_path_writes_what_the_general_path_writes(tmp_path: Path) -> None:
    """Builder.fast (nginx combined and plain pino lines, written straight from their fields) gives
    the general builder's bytes for every line it takes, hostile ones included, and leaves the rest."""
    log = tmp_path / "a%s.log"
    log.write_text("first\n")
    builder = Builder("host-%d")
    taken = set()
    for node in (None, "node-1"):
        fd = os.open(log, os.O_RDONLY)
        source = Source(service="api", fmt="auto", multiline=Multiline(mode="default"), node=node)
        tail = FileTail(str(log), fd, os.fstat(fd), Entry(path=str(log), gen=3), source, 1 << 20)
        for index, line in enumerate(_NGINX + _PINO):
            start = index * 997
            fast = builder.fast(tail, start, line)
            if fast is not None:
                taken.add(line)
                assert (source.key, fast) == builder.build(tail, Joined(start, start + len(line) + 1, line, None)), line
                assert orjson.loads(fast)["event"]["id"] == tail.line_id(start)
    # the shapes it exists for are taken (else this test would compare nothing)
    assert {_NGINX[i] for i in (0, 1, 4, 5, 6, 15)} | set(_PINO[:3]) <= taken
    # IPv6 clients that look like other formats' starts, escapes, non-ASCII, control characters, quotes
    # outside the quoted fields, other formats: the general path
    assert not taken & {_NGINX[i] for i in (2, 3, 7, 8, 9, 10, 11, 12, 13, 14, 16, 17, 18, 19, 20)}
    assert not taken & {_PINO[i] for i in range(3, len(_PINO))}
