"""Docker's json-file layout, written the way the daemon writes it (moby jsonfilelog: one object a
line, 16 KiB pieces for longer lines, RFC 3339 nano times, config.v2.json beside the log), tailed
into the real broker: services from the Compose label / mapping / instance rule, containers that
appear and disappear, the driver's rename rotation."""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.errors import KafkaTimeoutError

from collector.tail.reader import identity
from collector.tail.registry import Registry
from collector.tail.sink import KafkaSink
from tests.tail.conftest import delivered, exactly_once, records, running, settings, until

PIECE = 16 * 1024  # the daemon's buffer: longer lines arrive in pieces


class Container:
    def __init__(self, root: Path, name: str, labels: dict[str, str] | None = None, image: str = "node:20"):
        self.id = secrets.token_hex(32)
        self.dir = root / "containers" / self.id
        self.dir.mkdir(parents=True)
        self.log = self.dir / f"{self.id}-json.log"
        self.log.touch()
        config = {"ID": self.id, "Name": f"/{name}", "Config": {"Image": image, "Labels": labels or {}},
                  "LogPath": str(self.log)}
        (self.dir / "config.v2.json").write_bytes(orjson.dumps(config))
        self.n = 0

    def write(self, text: str, stream: str = "stdout") -> int:
        """Returns the offset where the line's first piece starts."""
        start = self.log.stat().st_size
        out = bytearray()
        data = text + "\n"
        for i in range(0, len(data), PIECE):
            self.n += 1
            out += orjson.dumps({"log": data[i:i + PIECE], "stream": stream,
                                 "time": f"2026-12-02T10:00:{self.n % 60:02d}.123456789Z"}) + b"\n"
        with open(self.log, "ab") as fh:
            fh.write(out)
        return start

    def rotate(self) -> None:
        os.rename(self.log, self.log.with_name(self.log.name + ".1"))
        self.log.touch()


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as fh:
        fh.write(data)


def by_message(recs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["message"]: r for r in recs}


async def test_containers(kafka_bootstrap: str, topic: str, tmp_path: Path) -> None:
    root = tmp_path / "docker"
    api = Container(root, "shop-api-service-1", {"com.docker.compose.service": "api-service",
                                                 "com.docker.compose.project": "shop"})
    auth = Container(root, "auth-service-2")
    mapped = Container(root, "legacy_box", image="acme/legacy:3")
    long_line = "x" * (PIECE * 2 + 100)
    api.write('{"level":30,"time":1796205600123,"pid":1,"hostname":"a1","msg":"listening"}')
    long_at = api.write(long_line)
    for line in ("Error: boom", "    at main (/app/index.js:3:9)", "    at node:internal/main:1:1"):
        api.write(line, stream="stderr")
    auth.write("plain start")
    own = Container(root, "elk-collector-tail-1", {"com.docker.compose.service": "collector-tail"})
    own.write("the tailer's own output is excluded")
    mapped.write("legacy hello")
    cfg = settings(kafka_bootstrap, topic, tmp_path, docker_root=root, service_map={"legacy_.*": "legacy"},
                   docker_exclude=["collector-tail"])
    async with running(cfg) as tailer:
        await until(lambda: delivered(tailer, 5), "5 records")
        late = Container(root, "worker")  # appears while running
        late.write("worker up")
        api.rotate()  # the driver's max-size rotation
        api.write("after rotation")
        auth.write("auth last words")
        shutil.rmtree(auth.dir)  # docker rm: read to the end, then forgotten
        await until(lambda: delivered(tailer, 8), "8 records")
        await until(lambda: True if len(tailer.tails) == 3 else len(tailer.tails), "removed container closed")
    recs = await records(kafka_bootstrap, topic, 8)
    node_trace = "Error: boom\n    at main (/app/index.js:3:9)\n    at node:internal/main:1:1"
    exactly_once(recs, ["listening", long_line, node_trace, "plain start", "legacy hello", "worker up",
                        "after rotation", "auth last words"])
    got = by_message(recs)
    pino = got["listening"]
    assert pino["_key"] == b"api-service"
    assert pino["service"] == {"name": "api-service", "node": {"name": "shop-api-service-1"}}
    assert pino["@timestamp"] == "2026-12-02T10:00:00.123Z" and pino["log.level"] == "info"
    assert pino["container"]["labels"]["com_docker_compose_project"] == "shop"
    assert pino["container"]["image"] == {"name": "node:20"} and pino["container"]["id"] == api.id
    assert long_at > 0 and got[long_line]["log"]["offset"] == long_at  # three pieces, one record
    trace = got[node_trace]
    assert trace["labels"]["stream"] == "stderr" and trace["log.level"] == "error"
    assert trace["@timestamp"].startswith("2026-12-02T10:00:")
    assert got["plain start"]["service"] == {"name": "auth-service", "node": {"name": "auth-service-2"}}
    assert got["legacy hello"]["service"]["name"] == "legacy"
    assert got["worker up"]["service"] == {"name": "worker", "node": {"name": "worker"}}


def split_head(app: Container, head: str, time: str = "2026-12-02T10:00:00.1Z") -> None:
    """The pieces of a line without its last: what the driver wrote when it rotated mid-line."""
    for i in range(0, len(head), PIECE):
        append(app.log, orjson.dumps({"log": head[i:i + PIECE], "stream": "stderr", "time": time}) + b"\n")


def split_rest(app: Container, rest: str) -> None:
    append(app.log, orjson.dumps({"log": rest + "\n", "stream": "stderr", "time": "2026-12-02T10:00:00.2Z"}) + b"\n")


def joined_across(recs: list[dict[str, Any]], head: str, rest: str) -> None:
    """One record for the split line: the rotated file's head and the new file's rest, with the head's
    stream and time, as the new file's first line."""
    messages = [r["message"] for r in recs]
    assert head not in messages and rest not in messages, "the head or the rest shipped alone"
    line = by_message(recs)[head + rest]
    assert line["labels"]["stream"] == "stderr" and line["@timestamp"] == "2026-12-02T10:00:00.100Z"
    assert line["log"]["offset"] == 0


async def test_split_line_across_a_rotation_and_long_lines_cut(kafka_bootstrap: str, topic: str,
                                                              tmp_path: Path) -> None:
    """A >16 KiB line whose pieces straddle `.1` and the new file is one record, head joined to rest;
    a long line is cut at max_line_bytes like a plain file's, not at 1 Mi characters."""
    root = tmp_path / "docker"
    app = Container(root, "api-service-1")
    app.write("before")
    head, rest = "h" * (2 * PIECE), "r" * 1000
    split_head(app, head)  # two pieces of a line, then the driver rotates
    cfg = settings(kafka_bootstrap, topic, tmp_path, docker_root=str(root), docker_multiline={"mode": "off"},
                   docker_format="plain", max_line_bytes=64 * 1024)
    async with running(cfg) as tailer:
        await until(lambda: delivered(tailer, 1), "the first line")
        app.rotate()
        split_rest(app, rest)
        long_line = "".join(chr(ord("a") + i % 26) for i in range(200_000))
        app.write(long_line)
        await until(lambda: delivered(tailer, 2 + 4), "the split line and the long one")
        await until(lambda: True if len(tailer.tails) == 1 else len(tailer.tails), "the rotated file closed")
    recs = await records(kafka_bootstrap, topic, 2 + 4)
    messages = [r["message"] for r in recs]
    assert messages[0] == "before"
    joined_across(recs, head, rest)
    longs = [m for m in messages if m not in ("before", head + rest)]
    assert "".join(longs) == long_line and max(map(len, longs)) <= 64 * 1024 + PIECE
    assert len(recs) == 2 + len(longs)
    positions = Registry(tmp_path / "registry.json").entries
    rotated = app.log.with_name(app.log.name + ".1")
    assert positions[identity(rotated.stat())].offset == rotated.stat().st_size  # the head acknowledged


async def test_split_line_across_a_rotation_while_down(kafka_bootstrap: str, topic: str, tmp_path: Path) -> None:
    """The head read before a stop (held, not shipped), the rotation and the rest while the tailer is
    down: after the restart the rotated file is found by identity and the line is still one record."""
    root = tmp_path / "docker"
    app = Container(root, "api-service-1")
    app.write("before")
    head, rest = "H" * (PIECE + 500), "R" * 700
    split_head(app, head)
    cfg = settings(kafka_bootstrap, topic, tmp_path, docker_root=str(root), docker_multiline={"mode": "off"},
                   docker_format="plain")
    async with running(cfg) as tailer:
        await until(lambda: delivered(tailer, 1), "the first line")
        await until(lambda: True if next(iter(tailer.tails.values())).pos == app.log.stat().st_size else "reading",
                    "the head read")
    app.rotate()
    split_rest(app, rest)
    app.write("after")
    async with running(cfg) as tailer:
        await until(lambda: delivered(tailer, 2), "the split line and the next")
        await until(lambda: True if len(tailer.tails) == 1 else len(tailer.tails), "the rotated file closed")
    recs = await records(kafka_bootstrap, topic, 3)
    exactly_once(recs, ["before", head + rest, "after"])
    joined_across(recs, head, rest)


async def test_split_line_across_a_rotation_when_a_delivery_fails(kafka_bootstrap: str, topic: str, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The delivery of the joined line fails (injected into the sink): both files are read again from
    what was acknowledged and the head is taken over again; the line is still one record, once."""
    root = tmp_path / "docker"
    app = Container(root, "api-service-1")
    app.write("before")
    head, rest = "h" * (PIECE + 100), "r" * 300
    split_head(app, head)
    failures = [1]  # armed once the first line is acknowledged
    armed = False
    deliver = KafkaSink._deliver

    async def failing(self: KafkaSink, producer: Any, batch: Any, part: int) -> Any:
        if armed and failures:
            failures.pop()
            raise KafkaTimeoutError("injected")
        return await deliver(self, producer, batch, part)

    monkeypatch.setattr(KafkaSink, "_deliver", failing)
    cfg = settings(kafka_bootstrap, topic, tmp_path, docker_root=str(root), docker_multiline={"mode": "off"},
                   docker_format="plain")
    async with running(cfg) as tailer:
        await until(lambda: delivered(tailer, 1), "the first line")
        armed = True
        app.rotate()
        split_rest(app, rest)
        app.write("after")
        await until(lambda: delivered(tailer, 3), "the split line and the next, after the failure")
        assert not failures
        await until(lambda: True if len(tailer.tails) == 1 else len(tailer.tails), "the rotated file closed")
    recs = await records(kafka_bootstrap, topic, 3)
    exactly_once(recs, ["before", head + rest, "after"])
    joined_across(recs, head, rest)
