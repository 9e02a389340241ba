"""One open file, followed by identity (device + inode), not by name.

- rename rotation: the descriptor stays open and is read to its end; the new file under the name
  is another identity, found by the next scan;
- copy-truncate and truncation: the size drops below the read position, or the first line
  changes (the file regrew before we looked): a new generation, read from offset 0;
- deleted while open: read to the end through the open descriptor, then forgotten.

`pos` is where reading goes on; `committed` is the end of the last record Kafka acknowledged, the
only offset the registry ever gets. A rewind (Kafka failed) goes back to `committed`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from collector.tail.multiline import Joiner
from collector.tail.registry import FP_BYTES, Entry, fingerprint
from collector.tail.settings import Multiline

ANCHOR_BYTES = 64

# (start offset, end offset, raw line without the newline) -> (start, end, text, attrs) or None
Decoded = tuple[int, int, str, Any]


@dataclass
class Source:
    """What a file is: how its lines are parsed and which service they belong to."""

    service: str
    fmt: str
    multiline: Multiline
    static: dict[str, Any] = field(default_factory=dict)  # fields every record of the file gets (container.*)
    node: str | None = None
    docker: bool = False
    key: bytes = b""  # the Kafka key: the service name
    service_obj: dict[str, Any] = field(default_factory=dict)  # shared by every record: never mutated

    def __post_init__(self) -> None:
        self.key = self.service.encode()
        self.service_obj = {"name": self.service, "node": {"name": self.node}} if self.node else {"name": self.service}


def identity(st: os.stat_result) -> str:
    return f"{st.st_dev}:{st.st_ino}"


def mark_of(fd: int, offset: int) -> str:
    """Digest of the (at most ANCHOR_BYTES) bytes before `offset`."""
    start = max(0, offset - ANCHOR_BYTES)
    return fingerprint(os.pread(fd, offset - start, start))


def head_fingerprint(fd: int) -> str | None:
    """The digest of the first line (at most FP_BYTES), None while that line is still incomplete."""
    head = os.pread(fd, FP_BYTES, 0)
    cut = head.find(b"\n")
    if cut >= 0:
        return fingerprint(head[:cut])
    return fingerprint(head) if len(head) == FP_BYTES else None


class FileTail:
    def __init__(self, path: str, fd: int, st: os.stat_result, entry: Entry, source: Source, max_line: int,
                 decoder: Callable[[int, int, bytes], Decoded | None] | None = None):
        self.path = path
        self.fd = fd
        self.key = identity(st)
        self.entry = entry
        self.source = source
        self.max_line = max_line
        self.pos = entry.offset
        self.committed = entry.offset
        self.partial = b""
        self.partial_start = entry.offset
        self.joiner = Joiner(source.multiline)
        self.decoder = decoder
        self.detached_at: float | None = None  # since when the path no longer leads here
        self.idle_since = 0.0
        self.at_eof = False  # the last read found no new data
        self.file_obj = {"path": entry.path}  # the first name it had: the same bytes after a rename
        self.raw_template: tuple[str, bytes] | None = None  # (for which id prefix, the record template)
        # the same for parsed records: (by which builder, the record's pieces), reset with the id prefix
        self.parsed_parts: tuple[Any, tuple[tuple[bytes, ...], bytes]] | None = None
        # plain shipping: no decoder, no joining, no parsing (the hot path)
        self.fast = decoder is None and source.fmt == "raw" and source.multiline.mode == "off" and not source.static
        self.inflight = 0  # records sent, not yet acknowledged
        self.turn = 0  # bytes read since opened (its turn, while other files wait for a descriptor)
        # the last bytes read and where they end: if they are not there any more, the content was replaced
        self.anchor: tuple[int, bytes] | None = None
        self.marked = entry.offset  # the offset entry.mark is about
        # a Docker line split across a rotation: this file's first line carries the older file's head
        # (that file, its generation and its end: acknowledged with this file's first record)
        self.carried: tuple[FileTail, int, int] | None = None
        self.handed = False  # its head went to the next file: kept open until that is acknowledged
        self._prefix = ""
        self._set_prefix()

    def _set_prefix(self) -> None:
        ident = f"{self.key}:{self.entry.fp}:{self.entry.gen}".encode()
        self._prefix = hashlib.blake2b(ident, digest_size=8).hexdigest()
        self.parsed_parts = None  # its pieces hold the id prefix

    def line_id(self, start: int) -> str:
        """Deterministic: the same line of the same file generation always gets the same id (the
        digest of the file's identity, first line and generation, then the line's offset)."""
        return f"{self._prefix}-{start:x}"

    def read(self, limit: int) -> list[tuple[int, int, bytes]]:
        """Complete lines from `pos` (at most about `limit` bytes); [] at the end of the data."""
        data = os.pread(self.fd, limit, self.pos)
        if not data:
            return []
        self.pos += len(data)
        self.turn += len(data)
        self.anchor = (self.pos, data[-ANCHOR_BYTES:])
        if self.partial:
            data = self.partial + data
        parts = data.split(b"\n")
        rest = parts.pop()
        out = []
        start = self.partial_start
        limit = self.max_line
        for part in parts:
            end = start + len(part) + 1
            while len(part) > limit:  # a longer line ships in pieces: memory and record size stay bounded
                out.append((start, start + limit, part[:limit]))
                start += limit
                part = part[limit:]
            out.append((start, end, part[:-1] if part[-1:] == b"\r" else part))
            start = end
        while len(rest) >= self.max_line:  # a line without end: cut, so memory stays bounded
            out.append((start, start + self.max_line, rest[:self.max_line]))
            start += self.max_line
            rest = rest[self.max_line:]
        self.partial = rest
        self.partial_start = start
        if out and not self.entry.fp:
            self.entry.fp = head_fingerprint(self.fd) or ""
            self._set_prefix()
        return out

    def unread(self, start: int) -> None:
        """Reading goes on at `start` (a line boundary) next time: lines read but not taken."""
        self.pos = start
        self.partial = b""
        self.partial_start = start

    def rest_of_file(self) -> list[tuple[int, int, bytes]]:
        """A last line without a newline, when the file is being closed for good."""
        if not self.partial:
            return []
        out = [(self.partial_start, self.partial_start + len(self.partial), self.partial)]
        self.partial = b""
        self.partial_start = self.pos
        return out

    def changed_under_us(self, st: os.stat_result) -> bool:
        """Truncated (size below what was read) or rewritten: the first line differs, or the last bytes
        read are not there any more (copy-truncate that regrew past our position, even with the same
        first line: a CSV header, a banner)."""
        if st.st_size < self.pos:
            return True
        if self.anchor is not None:
            end, tail = self.anchor
            if end > st.st_size or os.pread(self.fd, len(tail), end - len(tail)) != tail:
                return True
        elif self.entry.fp:
            head = head_fingerprint(self.fd)
            return head is not None and head != self.entry.fp
        return False

    def mark(self) -> None:
        """The digest of the bytes before the acknowledged offset, for the registry: a file rewritten
        while we were away (or an inode reused) with the same first line is told apart by it."""
        if self.entry.offset != self.marked:
            self.entry.mark = mark_of(self.fd, self.entry.offset)
            self.marked = self.entry.offset

    def decoder_idle(self) -> bool:
        """Nothing held by the decoder (a Docker line split in pieces not yet complete)."""
        return not getattr(self.decoder, "pieces", None)

    def new_generation(self) -> None:
        """The content was replaced: everything from offset 0 again, under new ids."""
        self.entry.gen += 1
        self.entry.offset = 0
        self.entry.fp = ""
        self.entry.mark = ""
        self.marked = 0
        self._set_prefix()
        self.pos = self.committed = 0
        self.anchor = None
        self.rewind()

    def rewind(self) -> None:
        """Back to the last acknowledged record (Kafka failed: what was in flight is read again)."""
        self.pos = self.committed
        self.partial = b""
        self.partial_start = self.committed
        self.joiner.reset()
        reset = getattr(self.decoder, "reset", None)
        if reset is not None:
            reset()

    def acknowledged(self, gen: int, end: int) -> None:
        if gen == self.entry.gen and end > self.committed:
            self.committed = end
            self.entry.offset = end

    def deleted(self) -> bool:
        return os.fstat(self.fd).st_nlink == 0

    def at_end(self) -> bool:
        return self.pos >= os.fstat(self.fd).st_size

    def close(self) -> None:
        os.close(self.fd)
