"""Positions: one JSON file, written atomically (temp file, fsync, rename, fsync of the directory).

A save that cannot be completed (a full disk: a short write, ENOSPC, EMFILE) never replaces the
last good file: the temp file is removed, the service keeps its positions in memory and says so,
and the next save tries again.

An entry is keyed by file identity `dev:ino`; `fp` is a digest of the file's first line (at most
FP_BYTES), so a reused inode (a new file after a deletion) is told apart from the one the entry is
about. `gen` counts truncations and reuses of the identity: it is part of every line's id, so lines
of a new generation never collide with the old one's in the index.
"""

from __future__ import annotations

import errno
import hashlib
import os
import time
from collections.abc import Collection
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

FP_BYTES = 256
VERSION = 1
FORGET_AFTER_S = 7 * 86400.0  # entries of files not seen for a week are dropped (never an open one)


@dataclass
class Entry:
    path: str
    offset: int = 0
    gen: int = 0
    fp: str = ""  # empty until the first line is complete
    seen: float = 0.0
    mark: str = ""  # digest of the bytes before `offset` (the same first line, other content: told apart)


def fingerprint(first_line: bytes) -> str:
    return hashlib.blake2b(first_line[:FP_BYTES], digest_size=8).hexdigest()


def _valid(raw: Any) -> Entry | None:
    if not isinstance(raw, dict):
        return None
    try:
        entry = Entry(path=str(raw["path"]), offset=int(raw["offset"]), gen=int(raw["gen"]), fp=str(raw["fp"]),
                      seen=float(raw.get("seen", 0.0)), mark=str(raw.get("mark", "")))
    except (KeyError, TypeError, ValueError):
        return None
    return entry if entry.offset >= 0 and entry.gen >= 0 else None


class Registry:
    def __init__(self, path: Path):
        self.path = path
        self.entries: dict[str, Entry] = {}
        self.dirty = False
        self.problem: str | None = None  # a damaged registry, for the service to log once
        self.save_error: str | None = None  # why the last save failed (None: it did not)
        self.save_failures = 0
        self.unread: str | None = None  # why the file could not be read at start (then it is not replaced)
        self.load()

    def load(self) -> None:
        try:
            data = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            self.unread = None
            return
        except OSError as exc:
            # not damage: the file may hold good positions, so it is never overwritten until it could
            # be read (each save tries again, and merges what it finds)
            self.unread = f"registry {self.path} could not be read ({exc}); positions start empty and the " \
                          "file is left as it is until it can be read"
            self.problem = self.unread
            return
        except orjson.JSONDecodeError as exc:
            # a damaged registry is kept aside for a human; starting over re-sends lines, whose ids collapse
            # (an OSError is not damage: it propagates, rather than the positions being thrown away)
            aside = self.path.with_name(self.path.name + f".broken-{int(time.time())}")
            try:
                os.replace(self.path, aside)
            except OSError:
                aside = self.path  # left where it is; the first good save replaces it
            self.problem = f"registry {self.path} unreadable ({exc}); moved to {aside}, starting over"
            self.unread = None
            return
        self.unread = None
        files = data.get("files") if isinstance(data, dict) and data.get("version") == VERSION else None
        if not isinstance(files, dict):
            return
        for key, raw in files.items():
            entry = _valid(raw)
            if entry is not None:
                self.entries[str(key)] = entry

    def get(self, key: str) -> Entry | None:
        return self.entries.get(key)

    def put(self, key: str, entry: Entry) -> None:
        self.entries[key] = entry
        self.dirty = True

    def drop(self, key: str) -> None:
        if self.entries.pop(key, None) is not None:
            self.dirty = True

    def forget(self, now: float, keep: Collection[str] = ()) -> None:
        """Entries not seen for FORGET_AFTER_S go, except those in `keep` (the files still known)."""
        for key in [k for k, e in self.entries.items()
                    if e.seen and now - e.seen > FORGET_AFTER_S and k not in keep]:
            del self.entries[key]

    def save(self, now: float | None = None, keep: Collection[str] = ()) -> bool:
        """Atomic: a crash leaves either the old file or the new one, never a torn one. Never raises:
        False (and `save_error` set) when the file could not be written; the old one stays."""
        if self.unread is not None:
            known = self.entries
            self.entries = {}
            self.load()
            for key, entry in known.items():  # what this run learnt wins over the file's older positions
                self.entries[key] = entry
            if self.unread is not None:
                self.save_error = self.unread
                self.save_failures += 1
                return False
        self.forget(time.time() if now is None else now, keep)
        body = orjson.dumps({"version": VERSION, "files": {k: asdict(e) for k, e in self.entries.items()}})
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _write_fully(tmp, body)
            os.replace(tmp, self.path)
            dirfd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dirfd)
            finally:
                os.close(dirfd)
        except OSError as exc:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            self.save_error = f"{type(exc).__name__}: {exc}"
            self.save_failures += 1
            return False
        self.save_error = None
        self.dirty = False
        return True


def _write_fully(path: Path, body: bytes) -> None:
    """The whole body, fsynced, or OSError (a short write that makes no progress is a full disk)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(body)
        while view:
            n = os.write(fd, view)
            if n <= 0:
                raise OSError(errno.ENOSPC, "no space left for the registry")
            view = view[n:]
        os.fsync(fd)
    finally:
        os.close(fd)
