"""Docker containers through the json-file logging driver's files.

Layout (moby daemon/logger/jsonfilelog): `<root>/containers/<id>/<id>-json.log`, one JSON object a
line: `{"log": "text\\n", "stream": "stdout|stderr", "time": "RFC 3339 with nanoseconds"}`; a line
longer than 16 KiB is split into several objects, all but the last without the trailing newline.
Rotation renames `<id>-json.log` to `.1`, `.2`... (the open descriptor follows it); a line being
written when it rotates has its first pieces in `.1` and the rest in the new file, which takes the
head over (JsonFileDecoder.take_head, collector.tail.service). Metadata is in
`config.v2.json` beside it: `Name` ("/api-service-1"), `Config.Image`, `Config.Labels`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson

from collector.contract.names import split_instance
from collector.tail.reader import Decoded, Source
from collector.tail.settings import Format, Multiline

COMPOSE_SERVICE = "com.docker.compose.service"
_ID = re.compile(r"^[0-9a-f]{12,64}$")
class JsonFileDecoder:
    """json-file objects -> lines of the container's output; split lines put together again (cut at
    `max_line` characters, like the lines of plain files)."""

    def __init__(self, max_line: int = 256 << 10) -> None:
        self.max_line = max_line
        self.pieces: list[str] = []
        self.size = 0
        self.first: tuple[int, str, str] | None = None
        self.last_end = 0

    def reset(self) -> None:
        self.pieces = []
        self.size = 0
        self.first = None

    def take_head(self, older: JsonFileDecoder) -> None:
        """The pieces `older` holds at its end (a line split across a rotation) continue in this file:
        the line is this file's first, at offset 0 (its id and offset belong to this file)."""
        assert older.first is not None
        _, stream, time = older.first
        self.first = (0, stream, time)
        self.pieces, self.size, self.last_end = older.pieces, older.size, 0
        older.reset()

    def holds(self) -> bool:
        return self.first is not None

    def flush(self) -> Decoded | None:
        """The pieces held when no file continues them (the rest never came): shipped as they are."""
        if self.first is None:
            return None
        first_start, stream, time = self.first
        text, end = "".join(self.pieces), self.last_end
        self.reset()
        return first_start, end, text, (stream, time)

    def __call__(self, start: int, end: int, raw: bytes) -> Decoded | None:
        try:
            obj = orjson.loads(raw)
            log = obj["log"]
            stream = obj.get("stream", "stdout")
            time = obj.get("time", "")
            if type(log) is not str or type(stream) is not str or type(time) is not str:
                raise TypeError
        except (orjson.JSONDecodeError, KeyError, TypeError):
            # not what Docker writes: the line itself, never dropped
            self.reset()
            return (start, end, raw.decode("utf-8", "replace"), None) if raw else None
        if log.endswith("\n") or self.size + len(log) >= self.max_line:
            if self.first is None:
                return start, end, log.removesuffix("\n").removesuffix("\r"), (stream, time)
            first_start, first_stream, first_time = self.first
            text = "".join(self.pieces) + log
            self.reset()
            return first_start, end, text.removesuffix("\n").removesuffix("\r"), (first_stream, first_time)
        if self.first is None:
            self.first = (start, stream, time)
        self.pieces.append(log)
        self.size += len(log)
        self.last_end = end
        return None


def _resolve(name: str, labels: dict[str, Any], service_map: dict[str, str]) -> str:
    label = labels.get(COMPOSE_SERVICE)
    if isinstance(label, str) and label:
        return label
    if name in service_map:
        return service_map[name]
    for pattern, service in service_map.items():
        if re.fullmatch(pattern, name):
            return service
    return split_instance(name)[0]


def container_source(container_dir: Path, fmt: Format, multiline: Multiline,
                     service_map: dict[str, str]) -> Source | None:
    """The Source of one container from its config.v2.json; None when that file is unusable."""
    try:
        meta = orjson.loads((container_dir / "config.v2.json").read_bytes())
        cid = str(meta.get("ID") or container_dir.name)
        name = str(meta.get("Name") or cid[:12]).lstrip("/")
        config = meta.get("Config") or {}
        image = str(config.get("Image") or "")
        labels = config.get("Labels") or {}
        if not isinstance(labels, dict):
            labels = {}
    except (OSError, orjson.JSONDecodeError, AttributeError):
        return None
    container: dict[str, Any] = {"id": cid, "name": name}
    if image:
        container["image"] = {"name": image}
    if labels:
        # ECS container.labels: keys without dots, else the engine would make objects of them
        container["labels"] = {str(k).replace(".", "_"): str(v) for k, v in sorted(labels.items())}
    service = _resolve(name, labels, service_map)
    return Source(service=service, fmt=fmt, multiline=multiline, static={"container": container}, node=name,
                  docker=True)


def container_logs(root: Path) -> list[tuple[Path, Path]]:
    """(container directory, its current json-file log) for every container that has one."""
    out: list[tuple[Path, Path]] = []
    try:
        dirs = list((root / "containers").iterdir())
    except OSError:
        return out
    for directory in dirs:
        if _ID.match(directory.name):
            log = directory / f"{directory.name}-json.log"
            if log.exists():
                out.append((directory, log))
    return out
