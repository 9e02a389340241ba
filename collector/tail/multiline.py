"""Joining the lines of one event (a stack trace, a PostgreSQL DETAIL) into one record.

Default rules, each from the runtime's own output format:
- Python (traceback module): `Traceback (most recent call last):`, indented `File ...` frames and
  source lines, then the unindented `ValueError: ...` line; chained exceptions are separated by a
  blank line and `During handling of the above exception...` / `The above exception was the direct
  cause...`.
- Java (Throwable.printStackTrace): `\\tat ...` frames, `Caused by: ...`, `\\t... 5 more`, the
  exception class line (`java.lang.IllegalStateException: boom`) after the log line.
- Node (V8 Error.stack): `    at ...` frames.
- Go (runtime panics): `panic: ...` / `fatal error: ...`, then blank lines, `goroutine N [state]:`,
  `pkg.func(...)` lines and `\\t/path/file.go:12 +0x1d` lines, `created by ...`, `exit status 2`.
- PostgreSQL: DETAIL, HINT, QUERY, CONTEXT, STATEMENT and LOCATION lines of a message.
- Any line starting with white space continues the record before it; a JSON line never does, and
  nothing else continues a JSON record (a `Traceback` after it is a record of its own).

A record is cut at `max_lines` / `max_bytes` (the rest starts a new record: nothing is dropped) and
sent after `timeout_s` without a new line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from collector.tail.parsers.postgres import PREFIX as _PG_PREFIX
from collector.tail.settings import Multiline

_PY_CHAIN = ("During handling of the above exception", "The above exception was the direct cause")
_PY_EXC = re.compile(r"[A-Za-z_][\w.]*(?::|$)")
_JAVA_EXC = re.compile(r"(?:[a-zA-Z_$][\w$]*\.)+[A-Z][\w$]*(?:Exception|Error|Throwable)(?::|$)")
_JAVA_MORE = ("Caused by: ", "Suppressed: ")
_GO_CONT = re.compile(r"goroutine \d+ \[|created by |exit status \d+$|\[signal |[\w./*()\[\]-]+\(.*\)$")
_PG_CONT = re.compile(_PG_PREFIX + r"(?:DETAIL|HINT|QUERY|CONTEXT|STATEMENT|LOCATION):  ")

NONE, PY, PY_END, GO = 0, 1, 2, 3


@dataclass(slots=True)
class Joined:
    start: int  # offset of the first line in the file
    end: int  # offset after the last line
    text: str
    attrs: Any  # the first line's extra facts (Docker: stream and time)


@dataclass(slots=True)
class _Pending:
    start: int
    end: int
    lines: list[str]
    size: int
    attrs: Any
    last_at: float
    held: list[tuple[int, str]] = field(default_factory=list)  # blank lines that may belong (Python, Go)


_DIGITS = frozenset(b"0123456789")


def whole(line: bytes, after: bytes) -> bool:
    """Whether the default multiline rules cannot join `after` to `line` (a shortcut past the joiner
    for most lines of nginx, pino and the like): `line` is JSON (only an indented line continues
    it), or starts with a digit (it starts no trace) and `after` is JSON or starts with a digit
    without PostgreSQL's continuation shape (`YYYY-`)."""
    first = line[:1]
    if first != b"{" and (not first or first[0] not in _DIGITS):
        return False
    nxt = after[:1]
    if not nxt:
        return False
    if nxt == b"{" or (first == b"{" and nxt not in (b" ", b"\t")):
        return True  # only an indented line continues a JSON record
    return nxt[0] in _DIGITS and after[4:5] != b"-"


class Joiner:
    def __init__(self, cfg: Multiline):
        self.cfg = cfg
        self.off = cfg.mode == "off"
        self.default = cfg.mode == "default"
        self.start_re = re.compile(cfg.start) if cfg.mode == "pattern" and cfg.start else None
        self.cont_re = re.compile(cfg.continue_) if cfg.mode == "pattern" and cfg.continue_ else None
        self.pending: _Pending | None = None
        self.state = NONE

    def reset(self) -> None:
        self.pending = None
        self.state = NONE

    def _continues(self, text: str) -> bool:
        """Whether `text` belongs to the pending record (default rules), updating the trace state."""
        if self.start_re is not None:
            return self.start_re.search(text) is None
        if self.cont_re is not None:
            return self.cont_re.search(text) is not None
        first = text[:1]
        if first == "{":
            self.state = NONE
            return False
        if first in (" ", "\t"):
            return True
        state = self.state
        if text.startswith("Traceback (most recent call last):"):
            self.state = PY
            return True
        if state in (PY, PY_END) and text.startswith(_PY_CHAIN):
            self.state = PY
            return True
        if state == PY and _PY_EXC.match(text):
            self.state = PY_END
            return True
        if state == GO and _GO_CONT.match(text):
            return True
        if text.startswith(("panic: ", "fatal error: ")):
            self.state = GO
            return False
        self.state = NONE
        if first.isdigit():  # most log lines start with a time or an address: only PostgreSQL's continue
            return text[4:5] == "-" and _PG_CONT.match(text) is not None
        return first.isalpha() and (text.startswith(_JAVA_MORE) or _JAVA_EXC.match(text) is not None)

    def alone(self, start: int, end: int, text: str, attrs: Any, raw: bytes, after: bytes) -> list[Joined] | None:
        """The reader's shortcut past `feed` (None: use `feed`): when `raw` cannot continue what is
        pending (JSON, or a digit first outside any trace and not PostgreSQL's `YYYY-` shape) and the
        line `after` it cannot continue it, the records are what is pending and this line."""
        if not self.default or not whole(raw, after):
            return None
        pending = self.pending
        if pending is None:
            self.state = NONE
            return [Joined(start, end, text, attrs)]
        if self.state != NONE or (raw[:1] != b"{" and raw[4:5] == b"-"):
            return None
        self.pending = None
        return [self._finish(pending), Joined(start, end, text, attrs)]

    def free(self, raw: bytes, after: bytes) -> bool:
        """`alone`'s commonest case without the Joined: nothing is pending and neither `raw` nor the
        line `after` it can be joined to what comes before, so `raw` is a record by itself (True)."""
        if self.pending is None and self.default and whole(raw, after):
            self.state = NONE
            return True
        return False

    def feed(self, start: int, end: int, text: str, attrs: Any, now: float) -> list[Joined]:
        """The records this line completed (usually the one before it)."""
        if self.off:
            return [Joined(start, end, text, attrs)] if text else []
        out: list[Joined] = []
        pending = self.pending
        if not text:
            if pending is not None and self.state != NONE:
                pending.held.append((end, text))
                pending.last_at = now
            return out
        if pending is not None and pending.lines[0][:1] == "{" and text[:1] not in (" ", "\t"):
            # a JSON record is whole: a traceback printed after it (stderr) is a record of its own
            self._continues(text)
            out.append(self._finish(pending))
            self.pending = _Pending(start, end, [text], len(text), attrs, now)
            return out
        if pending is not None and self._continues(text):
            if len(pending.lines) >= self.cfg.max_lines or pending.size + len(text) > self.cfg.max_bytes:
                out.append(self._finish(pending))
                self.pending = _Pending(start, end, [text], len(text), attrs, now)
                return out
            for _, blank in pending.held:
                pending.lines.append(blank)
            pending.held.clear()
            pending.lines.append(text)
            pending.size += len(text) + 1
            pending.end = end
            pending.last_at = now
            return out
        if pending is None:
            self._continues(text)  # for the trace state of the record this line starts
        else:
            out.append(self._finish(pending))
        self.pending = _Pending(start, end, [text], len(text), attrs, now)
        return out

    def _finish(self, pending: _Pending) -> Joined:
        text = pending.lines[0] if len(pending.lines) == 1 else "\n".join(pending.lines)
        return Joined(pending.start, pending.end, text, pending.attrs)

    def due(self, now: float) -> Joined | None:
        """The pending record when no line came for `timeout_s`."""
        pending = self.pending
        if pending is not None and now - pending.last_at >= self.cfg.timeout_s:
            return self.flush()
        return None

    def flush(self) -> Joined | None:
        pending, self.pending = self.pending, None
        self.state = NONE
        return self._finish(pending) if pending is not None else None
