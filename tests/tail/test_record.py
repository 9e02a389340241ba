"""Records are deterministic: the same line of the same file generation gives the same id and the
same bytes (a re-send collapses in the index), and the raw fast path writes exactly what the
general path writes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

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
    # numbers with leading zeros (JSON writes them without), a single zero, a status of 0xx
    '10.0.0.1 - - [02/Dec/2026:10:00:05 +0000] "GET / HTTP/1.1" 099 0 "-" "x"',
    '10.0.0.1 - - [02/Dec/2026:10:00:05 +0000] "GET / HTTP/1.1" 500 000 "-" "x"',
    '10.0.0.1 - - [02/Dec/2026:10:00:05 +0000] "GET / HTTP/1.1" 404 -',
]
_PINO = [
    '{"level":30,"time":1796205600000,"pid":7,"hostname":"api-1","reqId":1,"msg":"order 1 processed"}',
    '{"level":50,"time":1796205600999,"pid":7,"hostname":"api-1","msg":"no labels"}',
    '{"level":60,"time":1796205600001,"pid":7,"hostname":"h\\"x\\\\y\\u0001","a.b":1,"a_b":2,"f":1.5,"t":true,'
    '"n":null,"s":"caf\\u00e9 \\"q\\"","msg":"m\\n2"}',
    '{"level":30,"time":1796205600000,"pid":7,"hostname":"h","service":"x","labels":"y","event":1,"host":false,'
    '"agent":"a","msg":"top-level names as labels"}',
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
            fast = builder.fast(tail, start, line.encode())
            if fast is not None:
                taken.add(line)
                assert (source.key, fast) == builder.build(tail, Joined(start, start + len(line) + 1, line, None)), line
                assert orjson.loads(fast)["event"]["id"] == tail.line_id(start)
    # bytes that are not UTF-8: the general path (which decodes them with U+FFFD)
    assert builder.fast(tail, 0, _PINO[1].encode().replace(b"no labels", b"\xff")) is None
    assert builder.fast(tail, 0, _NGINX[0].encode().replace(b"X11", b"\xff")) is None
    # the shapes it exists for are taken (else this test would compare nothing)
    assert {_NGINX[i] for i in (0, 1, 4, 5, 6, 15, 21, 22, 23)} | set(_PINO[:4]) <= taken
    # IPv6 clients that look like other formats' starts, escapes, non-ASCII, control characters, quotes
    # outside the quoted fields, other formats: the general path
    assert not taken & {_NGINX[i] for i in (2, 3, 7, 8, 9, 10, 11, 12, 13, 14, 16, 17, 18, 19, 20)}
    assert not taken & {_PINO[i] for i in range(4, len(_PINO))}


def test_auto_access_is_the_detection_rule() -> None:
    from collector.tail.parsers import _candidates, auto_access, auto_access_ascii
    from collector.tail.parsers.nginx import parse_access

    for line in _NGINX + _PINO + ["a - - [x]", "abc - - [x]", "ab - -", "1234:5 - -", "x" * 46 + " - -", "::1 - -",
                                  "x" * 45 + " - -", "12 - - [x]", "1:2 - -", ":12 - -"]:
        assert auto_access(line) == (_candidates(line) == (parse_access,)), line
        if line.isascii():
            assert auto_access_ascii(line.encode()) == auto_access(line[:48]), line


class _Sink:
    """What the tailer adds, in order: (key, value, end of the record)."""

    max_record = 1 << 20

    def __init__(self) -> None:
        self.out: list[tuple[bytes, bytes, int]] = []

    def room(self, limit: int) -> int:
        return 1 << 40

    def add_many(self, key: bytes, values: list[bytes], tail: object, gen: int, end: int, size: int) -> None:
        self.out += [(key, value, -1) for value in values[:-1]] + [(key, values[-1], end)]

    def add(self, key: bytes, value: bytes, tail: object, gen: int, end: int) -> None:
        self.out.append((key, value, end))


def _shipped(tmp_path: Path, lines: list[str], fast: bool, chunk: int,
             taken: list[int]) -> list[tuple[bytes, bytes, int]]:
    from collector.tail.service import Tailer
    from collector.tail.settings import TailSettings

    log = tmp_path / "mixed.log"
    if not log.exists():
        log.write_text("".join(line + "\n" for line in lines))
    cfg = TailSettings(TAIL_KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", topic="t", registry_path=tmp_path / "registry.json",
                       inputs=[{"paths": [str(log)], "service": "api", "format": "auto"}])
    tailer = Tailer(cfg)
    sink = _Sink()
    tailer.sink = sink  # type: ignore[assignment]
    if not fast:  # every line the general way
        tailer.builder.fast = lambda tail, start, line: None  # type: ignore[method-assign]
        tailer.builder.fast_run = lambda tail, lines, index, *rest, **kw: (index, 0, -1)  # type: ignore[method-assign]
    else:  # the runs it took (else this test would compare nothing)
        run = tailer.builder.fast_run

        def counted(*args: Any, **kw: Any) -> tuple[int, int, int]:
            index, size, last = run(*args, **kw)
            taken[0] += index - args[2]
            return index, size, last

        tailer.builder.fast_run = counted  # type: ignore[method-assign]
    tailer.scan(0.0)
    tail = next(iter(tailer.tails.values()))
    while lines_read := tail.read(chunk):
        tailer._lines(tail, lines_read, 0.0)
    last = tail.joiner.flush()
    if last is not None:
        tailer._emit(tail, last)
    tail.close()
    return sink.out


def test_the_fast_loop_ships_what_the_general_path_ships(tmp_path: Path) -> None:
    """`_lines` with Builder.fast_run and Builder.fast (runs of nginx and pino lines written straight
    from their bytes) adds the same records, keys, ends and order as with every line built the
    general way, over a file that mixes them with lines they leave (traces joined, other formats,
    hostile nginx and pino lines), read in chunks of several sizes (runs cut anywhere)."""
    trace = ["Traceback (most recent call last):", '  File "app.py", line 1, in <module>', "ValueError: boom"]
    lines = []
    for i in range(60):
        lines += [_NGINX[i % len(_NGINX)], _PINO[i % len(_PINO)], _NGINX[0].replace("/api", f"/api/{i}")]
        if i % 7 == 0:
            lines += ["2026-12-02 10:00:00,123 ERROR worker: failed", *trace]
        if i % 11 == 0:
            lines += ["    at main (/app/index.js:3:9)", '{"level":30,"msg":"x"}', "plain"]
    for chunk in (1 << 20, 4096, 700, 150):
        taken = [0]
        general = _shipped(tmp_path, lines, False, chunk, taken)
        assert len(general) > 150
        assert _shipped(tmp_path, lines, True, chunk, taken) == general, chunk
        assert taken[0] > len(general) // 3, taken
