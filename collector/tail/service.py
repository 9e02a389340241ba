"""The tailer's loop: scan -> read -> join -> parse -> batch -> send -> settle -> registry.

Backpressure: reading stops while more than `max_inflight_bytes` are unacknowledged, so while
Kafka is away the files are the buffer and memory stays bounded. A failed delivery rewinds every
file to its last acknowledged record and reconnects by the sink's rule (collector.kafka_link: a wait
doubling to 30 s, the outage said once); the re-sent records carry the same ids and bytes, so they
collapse in the index. Scanning and rotation tracking go on while Kafka is
away (a file created and rotated during an outage is held open, within the open-file bound).

Open files are bounded (`max_open_files`, below the process's descriptor limit). Matched files past
the bound wait in a queue, said once in the log and counted; while files wait, open files give their
slot up when quiet (at their end, nothing in flight) or after a turn of TURN_BYTES, and are reopened
at their acknowledged position when they change: every file is eventually read. Files are served
round-robin, so a busy file cannot starve the others under backpressure.
"""

from __future__ import annotations

import asyncio
import errno
import fnmatch
import os
import resource
import socket
import stat
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson

import collector
from collector.tail.docker import JsonFileDecoder
from collector.tail.inputs import file_source, matches
from collector.tail.multiline import NONE, Joined
from collector.tail.parsers import times
from collector.tail.reader import FileTail, Source, head_fingerprint, identity, mark_of
from collector.tail.record import Builder
from collector.tail.registry import Entry, Registry
from collector.tail.settings import TailSettings
from collector.tail.sink import OVERHEAD, KafkaSink

log = collector.get_logger("collector.tail")

CHUNK = 256 * 1024  # bytes read from one file before the next file gets its turn
TURN_BYTES = 4 * CHUNK  # while files wait for a descriptor, an open file gives its slot up after this much
DEFAULT_MAX_OPEN = 1024
RESERVED_FDS = 64  # descriptors left for Kafka connections, the registry and the rest of the process


def open_file_bound(configured: int | None) -> int:
    """Files held open at once: the configured bound (default 1024), always RESERVED_FDS below the
    process's soft RLIMIT_NOFILE."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    room = (1 << 20) if soft == resource.RLIM_INFINITY else soft - RESERVED_FDS
    return max(1, min(configured or DEFAULT_MAX_OPEN, room))


@dataclass
class Known:
    """A matched file that is not open: waiting for a descriptor, or given its slot up (parked)."""

    path: str
    source: Source
    start_at_end: bool = False
    detached: bool = False  # renamed away: found by identity beside its old name
    size: int = -1  # size and mtime when parked: a change wants the file open again (-1: wants it now)
    mtime: int | None = -1
    queued: bool = False
    counted: bool = False  # counted in files_waited
TRUNCATED = " [cut by elk-tail: too large for a Kafka record]"


class Tailer:
    def __init__(self, settings: TailSettings, clock: Callable[[], float] = time.time):
        self.settings = settings
        times.set_zone(settings.timezone)
        self.clock = clock  # wall time of registry stamps (tests inject days)
        self.registry = Registry(settings.registry_path)
        self.tails: dict[str, FileTail] = {}  # open files
        self.known: dict[str, Known] = {}  # matched files not open (waiting or parked)
        self.queue: deque[str] = deque()  # keys of known files that want a descriptor, in order
        self.max_open = open_file_bound(settings.max_open_files)
        self.finished: set[str] = set()  # detached files whose last record is out
        self.docker_sources: dict[Path, Source] = {}
        self.builder = Builder(settings.host_name or socket.gethostname())
        self.sink = KafkaSink(settings.kafka_bootstrap_servers, settings.topic, settings.batch_linger_ms,
                              settings.request_timeout_s, compression=settings.compression)
        self.first_scan = True
        self.paused = False
        self._next = 0  # where the next pass over the files starts (round-robin)
        self.counters = {"files_waited": 0, "files_parked": 0, "registry_save_failures": 0, "scan_errors": 0}
        self._own = _own_files(settings.registry_path)

    # -- files ---------------------------------------------------------------------------------------
    def scan(self, now: float) -> None:
        """Never raises: a scan that fails (EMFILE, EIO on a directory) is logged and retried next time."""
        try:
            self._scan(now)
        except OSError as exc:
            self.counters["scan_errors"] += 1
            log.warning("scan failed; retried at the next scan", error=type(exc).__name__, detail=str(exc)[:200])
        self.first_scan = False

    def _scan(self, now: float) -> None:
        seen: set[str] = set()
        for path, cfg, docker in matches(self.settings, self.docker_sources):
            if _is_own(path, self._own):
                continue  # the registry and its temp/aside files: never shipped
            try:
                st = os.stat(path)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            key = identity(st)
            seen.add(key)
            tail = self.tails.get(key)
            if tail is not None:
                tail.path = path
                tail.detached_at = None
                continue
            known = self.known.get(key)
            if known is None:
                source = docker if docker is not None else file_source(cfg, path)  # type: ignore[arg-type]
                start_at_end = cfg is not None and cfg.start_at == "end" and self.first_scan
                known = self.known[key] = Known(path, source, start_at_end)
            known.path, known.detached = path, False
            if _changed(known, st):
                self._want(key, known)
        if self.first_scan:
            self._resume_rotated(seen)
        self._follow_moved(seen)
        self._fill(now)
        for tail in self.tails.values():
            try:
                here = identity(os.stat(tail.path)) == tail.key
            except OSError:
                here = False
            if not here and tail.detached_at is None:
                tail.detached_at = now

    def _resume_rotated(self, seen: set[str]) -> None:
        """Files in the registry that were renamed while we were down (logrotate, Docker's max-size,
        the kubelet behind a symlink): known by identity, looked for beside their old name."""
        for key, entry in self.registry.entries.items():
            if key in seen or key in self.tails or key in self.known:
                continue
            source = self._source_of(entry.path)
            if source is not None:
                self.known[key] = Known(entry.path, source, detached=True, size=entry.offset, mtime=None)

    def _follow_moved(self, seen: set[str]) -> None:
        """Known files the globs no longer match: renamed (rotated) beside their old name, or gone."""
        listings: dict[str, dict[str, tuple[str, os.stat_result]]] = {}
        for key, known in list(self.known.items()):
            if key in seen:
                continue
            found = None
            for directory in _directories(known.path):
                if directory not in listings:
                    listings[directory] = _listing(directory)
                found = listings[directory].get(key)
                if found is not None:
                    break
            if found is None:
                del self.known[key]  # deleted (or moved out of sight): its registry entry ages out
                continue
            known.path, known.detached = found[0], True
            if _changed(known, found[1]):
                self._want(key, known)

    def _source_of(self, path: str) -> Source | None:
        name = os.path.basename(path)
        for cfg in self.settings.inputs:
            if any(fnmatch.fnmatch(path, pattern) for pattern in cfg.paths):
                if any(fnmatch.fnmatch(name, ex) for ex in cfg.exclude):
                    return None
                return file_source(cfg, path)
        return self.docker_sources.get(Path(path).parent)

    def _want(self, key: str, known: Known) -> None:
        if not known.queued:
            known.queued = True
            self.queue.append(key)

    def _fill(self, now: float) -> None:
        """Open waiting files while there is room; say so once when files have to wait."""
        was_waiting = any(self.known[k].counted for k in self.queue if k in self.known)
        while self.queue and len(self.tails) < self.max_open:
            key = self.queue[0]
            known = self.known.get(key)
            if known is None or not known.queued:
                self.queue.popleft()
                continue
            result = self._open(known.path, key, known.source, known.start_at_end, now)
            if result == errno.EMFILE:
                break  # the process is out of descriptors: the bound leaves room next time
            self.queue.popleft()
            known.queued = False
            if result == 0:
                del self.known[key]
                if known.detached:
                    self.tails[key].detached_at = now
        waiting = [self.known[k] for k in self.queue if k in self.known]
        fresh = [k for k in waiting if not k.counted]
        for known in fresh:
            known.counted = True
        self.counters["files_waited"] += len(fresh)
        if fresh and not was_waiting:
            log.warning("open-file limit reached; files wait for a descriptor and are read in turn",
                        waiting=len(waiting), open=len(self.tails), max_open=self.max_open)
        if not waiting:
            for known in self.known.values():
                known.counted = False

    def _open(self, path: str, key: str, source: Source, start_at_end: bool, now: float) -> int:
        """0 when open; else the errno (EMFILE: try again later; anything else: the file is gone)."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            return errno.EMFILE if exc.errno in (errno.EMFILE, errno.ENFILE) else (exc.errno or errno.EIO)
        try:
            st = os.fstat(fd)
            if identity(st) != key:  # replaced between stat and open: the next scan
                os.close(fd)
                return errno.ESTALE
            entry = self.registry.get(key)
            if entry is not None:
                head = head_fingerprint(fd)
                if ((entry.fp and head != entry.fp) or st.st_size < entry.offset
                        or (entry.mark and entry.offset and mark_of(fd, entry.offset) != entry.mark)):
                    # an inode reused by another file, or truncated while we were away: a new generation
                    entry = Entry(path=path, offset=0, gen=entry.gen + 1)
                    log.info("file replaced since last run; reading it from the start", path=path)
            else:
                entry = Entry(path=path, offset=st.st_size if start_at_end else 0)
                if entry.offset:
                    entry.fp = head_fingerprint(fd) or ""
        except OSError as exc:
            os.close(fd)
            return exc.errno or errno.EIO
        entry.seen = self.clock()
        self.registry.put(key, entry)
        decoder = JsonFileDecoder(self.settings.max_line_bytes) if source.docker else None
        self.tails[key] = FileTail(path, fd, st, entry, source, self.settings.max_line_bytes, decoder)
        log.info("tailing", path=path, service=source.service, offset=entry.offset, format=source.fmt)
        return 0

    def _park(self, tail: FileTail, requeue: bool) -> None:
        """Give the descriptor up; the file is reopened at its acknowledged position when it changes
        (`requeue`: at once, its turn is over but it has more)."""
        try:
            st = os.fstat(tail.fd)
            tail.mark()  # the entry's mark must be about its offset when the file is reopened
        except OSError:
            return
        tail.entry.seen = self.clock()
        self.registry.dirty = True
        known = Known(tail.path, tail.source, detached=tail.detached_at is not None, size=st.st_size,
                      mtime=st.st_mtime_ns)
        tail.close()
        del self.tails[tail.key]
        self.finished.discard(tail.key)
        self.known[tail.key] = known
        self.counters["files_parked"] += 1
        if requeue:
            self._want(tail.key, known)

    def _make_room(self, now: float) -> None:
        """While files wait: quiet files, and files whose turn is over, give their descriptor up."""
        busy = self._busy()
        for tail in list(self.tails.values()):
            if tail in busy or tail.joiner.pending is not None or not tail.decoder_idle():
                continue
            if tail.handed or tail.carried is not None:
                continue  # a head handed over across a rotation: both files stay until it is acknowledged
            quiet = tail.at_eof and now - tail.idle_since >= min(self.settings.close_inactive_s, 1.0)
            if tail.key in self.finished or (not quiet and tail.turn < TURN_BYTES):
                continue
            if tail.deleted():
                continue  # only its descriptor still reads it
            self._park(tail, requeue=not quiet)
        self._fill(now)

    def _busy(self) -> set[FileTail]:
        busy = set(self.sink.open.marks)
        for round_ in self.sink.rounds:
            busy.update(round_.marks)
        return busy

    def _new_generation(self, tail: FileTail, why: str) -> None:
        log.info(f"file {why}; reading it from the start", path=tail.path)
        _undo_handover(tail, rewind_older=True)
        tail.new_generation()
        self.finished.discard(tail.key)
        self.registry.put(tail.key, tail.entry)
        self._save()  # the new generation's ids must be the ones used after a crash too

    def _close_finished(self, now: float) -> None:
        busy = self._busy()
        for key in list(self.finished):
            tail = self.tails[key]
            if tail in busy or tail.handed:
                continue
            deleted = tail.deleted()
            if self.queue and not deleted:
                self._park(tail, requeue=False)  # followed beside its old name while it has no slot
                continue
            quiet_s = self.settings.close_inactive_s if deleted else self.settings.close_renamed_s
            if now - tail.idle_since < quiet_s:
                continue
            if deleted:
                self.registry.drop(key)
            else:
                tail.entry.seen = self.clock()
                self.registry.dirty = True
                try:
                    tail.mark()
                except OSError:
                    pass
            tail.close()
            del self.tails[key]
            self.finished.discard(key)
            log.info("closed", path=tail.path)
        if self.queue:
            self._fill(now)

    def _save(self) -> None:
        """Positions to disk; a failure keeps the last good file and the service running."""
        now = self.clock()
        for tail in self.tails.values():
            tail.entry.seen = now  # an open file's entry never ages out
            try:
                tail.mark()
            except OSError:
                pass
        failed = self.registry.save_error
        if self.registry.save(now, keep=self.known.keys() | self.tails.keys()):
            if failed:
                log.info("registry written again", path=str(self.registry.path))
            return
        self.counters["registry_save_failures"] += 1
        if not failed:
            log.error("registry not written; the last good one stays and positions are kept in memory",
                      path=str(self.registry.path), error=self.registry.save_error)

    # -- records -------------------------------------------------------------------------------------
    def _emit(self, tail: FileTail, joined: Joined) -> None:
        key, value = self.builder.build(tail, joined)
        while len(value) > self.sink.max_record and joined.text:
            # JSON escaping can make a line several times longer than its bytes: the text is cut so the
            # record fits a Kafka batch (deterministically: a re-send is cut the same way)
            keep = max(0, len(joined.text) * self.sink.max_record // len(value) - 4096)
            joined = Joined(joined.start, joined.end, joined.text[:keep] + TRUNCATED, joined.attrs)
            key, value = self.builder.build(tail, joined)
        self.sink.add(key, value, tail, tail.entry.gen, joined.end)

    def _raw_lines(self, tail: FileTail, lines: list[tuple[int, int, bytes]]) -> None:
        """`_lines` for plain shipping: each line straight into the record template, added in bulk."""
        template = self.builder.raw_template(tail)
        sink = self.sink
        room = sink.room(self.settings.max_inflight_bytes)
        key = tail.source.key
        overhead = len(key) + OVERHEAD
        dumps = orjson.dumps
        values: list[bytes] = []
        size = 0
        last = -1
        for start, end, raw in lines:
            if size >= room:
                tail.unread(start)  # the bound holds per record, not per chunk read
                self.paused = True
                break
            if raw:
                value = template % (dumps(raw.decode("utf-8", "replace")), start, start)
                if len(value) > sink.max_record:
                    if values:
                        sink.add_many(key, values, tail, tail.entry.gen, last, size)
                        values, size, room = [], 0, room - size
                    self._emit(tail, Joined(start, end, raw.decode("utf-8", "replace"), None))
                    continue
                values.append(value)
                size += len(value) + overhead
                last = end
        if values:
            sink.add_many(key, values, tail, tail.entry.gen, last, size)

    def _lines(self, tail: FileTail, lines: list[tuple[int, int, bytes]], now: float) -> None:
        if tail.fast:
            self._raw_lines(tail, lines)
            return
        decoder = tail.decoder
        joiner = tail.joiner
        sink = self.sink
        build = self.builder.build
        fast = self.builder.fast
        # format auto's commonest lines are written straight from their fields (Builder.fast)
        quick = decoder is None and tail.source.fmt == "auto" and not tail.source.static
        source_key = tail.source.key
        max_record = sink.max_record
        gen = tail.entry.gen
        room = sink.room(self.settings.max_inflight_bytes)
        # records of one key in a row go to the sink together (as on the raw path)
        key0 = b""
        values: list[bytes] = []
        size = last = 0
        # a line followed by one that cannot continue it is a record by itself (Docker lines: the decoder
        # may change them, so they always go through `feed`)
        last_index = len(lines) - 1 if decoder is None else -1
        count = len(lines)
        index = -1
        while index + 1 < count:
            index += 1
            if quick and (key0 == source_key or not values) and index < last_index:
                index, size, end = self._quick_run(tail, lines, index, last_index, values, size, room)
                if end >= 0:
                    key0, last = source_key, end
                if index >= count:
                    break
            start, end, raw = lines[index]
            if size >= room:
                tail.unread(start)  # the bound holds per record, not per chunk read
                self.paused = True
                break
            tried = False  # whether `fast` already had this line (its answer in `value`)
            value = None
            if quick and index < last_index and joiner.free(raw, lines[index + 1][2]):
                try:
                    value = fast(tail, start, raw)
                except Exception:  # a bug there must never cost a line: the general path decides
                    value = None
                if value is not None and key0 == source_key and len(value) <= max_record:
                    values.append(value)
                    size += len(value) + len(source_key) + OVERHEAD
                    last = end
                    continue
                records = [Joined(start, end, raw.decode("utf-8", "replace"), None)]
                tried = True
            else:
                if decoder is not None:
                    decoded = decoder(start, end, raw)
                    if decoded is None:
                        continue
                    start, end, text, attrs = decoded
                else:
                    text = raw.decode("utf-8", "replace")
                    attrs = None
                alone = joiner.alone(start, end, text, attrs, raw, lines[index + 1][2]) if index < last_index else None
                records = alone if alone is not None else joiner.feed(start, end, text, attrs, now)
            for joined in records:
                if not tried:
                    value = None
                    if quick:
                        try:
                            value = fast(tail, joined.start, joined.text.encode())
                        except Exception:  # a bug there must never cost a line: the general path decides
                            value = None
                if value is None:
                    key, value = build(tail, joined)
                else:
                    key = source_key
                if len(value) > max_record or (key != key0 and values):
                    if values:
                        sink.add_many(key0, values, tail, gen, last, size)
                        room -= size
                        values, size = [], 0
                    if len(value) > max_record:
                        self._emit(tail, joined)  # cut to fit
                        room = sink.room(self.settings.max_inflight_bytes)
                        continue
                key0 = key
                values.append(value)
                size += len(value) + len(key) + OVERHEAD
                last = joined.end
        if values:
            sink.add_many(key0, values, tail, gen, last, size)

    def _quick_run(self, tail: FileTail, lines: list[tuple[int, int, bytes]], index: int, stop: int,
                   values: list[bytes], size: int, room: int) -> tuple[int, int, int]:
        """`_lines`' commonest case in a loop of its own (Builder.fast_run): from `index` (before `stop`,
        the last line), lines that are records by themselves (`Joiner.free`) and that `Builder.fast`
        writes, appended to `values` while there is room. Returns where it stopped, the size, and the
        end of the last line taken (-1: none)."""
        joiner = tail.joiner
        if joiner.pending is not None or not joiner.default:
            return index, size, -1
        taken = len(values)
        try:
            index, added, last = self.builder.fast_run(tail, lines, index, stop, room - size,
                                                       len(tail.source.key) + OVERHEAD, self.sink.max_record, values)
        except Exception:  # a bug there must never cost a line: the general path decides
            del values[taken:]
            return index, size, -1
        size += added
        if last >= 0:
            joiner.state = NONE  # as `Joiner.free` leaves it
        return index, size, last

    def read_some(self, now: float) -> bool:
        """One pass over the files, starting where the last one stopped; True when any had new data."""
        moved = False
        self.paused = False
        limit = self.settings.max_inflight_bytes
        order = list(self.tails.values())
        first = self._next % len(order) if order else 0
        for i, tail in enumerate(order[first:] + order[:first]):
            if self.sink.full(limit):
                self.paused = True
                self._next = first + i  # this file is the first served once there is room
                return moved
            if self.queue and tail.turn >= TURN_BYTES and tail.decoder_idle():
                continue  # its turn is over: it gives its slot up once what it sent is acknowledged
            try:
                st = os.fstat(tail.fd)
                if st.st_size == tail.pos:  # nothing new, nothing shorter: no read
                    lines = []
                elif tail.pos == 0 and tail.carried is None and not self._older_read(tail):
                    continue  # a container's rotated file is read to its end before its new one
                else:
                    if tail.changed_under_us(st):
                        # checked before every read: a copy-truncate that regrew past our position while we
                        # were behind must not be read on at the old offset
                        self._new_generation(tail, "truncated or rewritten")
                    lines = tail.read(CHUNK)
            except OSError as exc:
                log.warning("read failed; the file is retried", path=tail.path, error=type(exc).__name__)
                continue
            if lines:
                moved = True
                self.finished.discard(tail.key)  # a renamed file its writer still writes to
                tail.idle_since = now
                tail.at_eof = False
                self._lines(tail, lines, now)
                if self.paused:
                    self._next = first + i + 1  # the others first: this one had its share
                    return moved
                continue
            tail.at_eof = True
            joined = tail.joiner.due(now)
            if joined is not None:
                self._emit(tail, joined)
            if (tail.detached_at is not None and tail.key not in self.finished
                    and now - tail.idle_since >= self.settings.close_inactive_s
                    and not self._successor_due(tail, now)):
                # renamed or deleted, read to its end and quiet: the last partial line and record go out
                self._lines(tail, tail.rest_of_file(), now)
                self._flush_decoder(tail)
                last = tail.joiner.flush()
                if last is not None:
                    self._emit(tail, last)
                self.finished.add(tail.key)
        self._next = first
        return moved

    def _older_read(self, tail: FileTail) -> bool:
        """For a container's file about to be read from offset 0: False while a rotated file of the same
        container is still open and not read to its end (its lines come first). When one ends with the
        head of a line split across the rotation (pieces without their last), this file's first line
        is its rest: the head is taken over, so the line is one record (this file's first), and the
        older file's end is acknowledged with it."""
        decoder = tail.decoder
        if not isinstance(decoder, JsonFileDecoder):
            return True
        older = [t for t in self.tails.values()
                 if t is not tail and t.source is tail.source and t.detached_at is not None]
        for other in older:
            if other.partial or other.pos < os.fstat(other.fd).st_size:
                return False
        heads = [t for t in older if isinstance(t.decoder, JsonFileDecoder) and t.decoder.holds() and not t.handed]
        if len(heads) == 1:  # more than one: which continues here cannot be told; each ships its head
            other = heads[0]
            decoder.take_head(other.decoder)  # type: ignore[arg-type]
            tail.carried = (other, other.entry.gen, other.pos)
            other.handed = True
        return True

    def _successor_due(self, tail: FileTail, now: float) -> bool:
        """A rotated container file that ends with the head of a split line is not finished while the
        container's new file may still continue it: opened and not read yet, within close_renamed_s
        of the rotation (then the head ships alone)."""
        if not (isinstance(tail.decoder, JsonFileDecoder) and tail.decoder.holds() and tail.detached_at is not None
                and now - tail.detached_at < self.settings.close_renamed_s):
            return False
        return (any(t is not tail and t.source is tail.source and t.detached_at is None and t.pos == 0
                    for t in self.tails.values())
                or any(k.source is tail.source and k.queued and not k.detached for k in self.known.values()))

    def _flush_decoder(self, tail: FileTail) -> None:
        """The head of a Docker line split across a rotation that no file continued: shipped alone."""
        flush = getattr(tail.decoder, "flush", None)
        decoded = flush() if flush is not None else None
        if decoded is not None:
            start, end, text, attrs = decoded
            for joined in tail.joiner.feed(start, end, text, attrs, 0.0):
                self._emit(tail, joined)

    def settle(self) -> None:
        for done in self.sink.settled():
            for tail, (gen, end) in done.marks.items():
                tail.acknowledged(gen, end)
                if tail.carried is not None and gen == tail.entry.gen and end > 0:
                    # its first record (the line whose head was in the rotated file) is acknowledged
                    older, older_gen, older_end = tail.carried
                    older.acknowledged(older_gen, older_end)
                    older.handed = False
                    tail.carried = None
            self.registry.dirty = True

    async def _fail(self, exc: BaseException) -> None:
        log.warning("kafka delivery failed; re-reading unacknowledged lines after reconnecting",
                    error=type(exc).__name__, detail=str(exc)[:200])
        await self.sink.stop()
        for tail in self.tails.values():
            _undo_handover(tail, rewind_older=False)  # both are rewound: the head is taken over again
            tail.rewind()
        self.finished.clear()

    async def _connect(self) -> bool:
        """One try, when the sink's rule allows it (`sink.retry_at`, collector.kafka_link): the sink
        says once that Kafka is away and once that it is back, so a failed try says nothing here."""
        try:
            await self.sink.start()
        except Exception:
            return False
        log.info("kafka connected", topic=self.settings.topic)
        return True

    # -- the loop ------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        if self.registry.problem:
            log.error(self.registry.problem)
        settings = self.settings
        last_scan = last_save = 0.0
        try:
            while not stop.is_set():
                now = time.monotonic()
                if self.sink.producer is None and now >= self.sink.retry_at:
                    await self._connect()
                    now = time.monotonic()
                if now - last_scan >= settings.scan_interval_s:
                    self.scan(now)  # while Kafka is away too: new and rotated files are held open
                    last_scan = now
                if self.sink.producer is None:
                    if self.registry.dirty and now - last_save >= settings.registry_flush_s:
                        self._save()
                        last_save = now
                    await _sleep(stop, min(settings.poll_interval_s * 5, max(0.0, self.sink.retry_at - now)) or 0.01)
                    continue
                try:
                    moved = self.read_some(now)
                    if self.sink.due() or (self.sink.open.records and not moved):
                        await self.sink.send()
                    self.settle()
                except Exception as exc:
                    await self._fail(exc)
                    continue
                self._close_finished(now)
                if self.queue:
                    self._make_room(now)
                if self.registry.dirty and now - last_save >= settings.registry_flush_s:
                    self._save()
                    last_save = now
                if not moved or self.paused:
                    if self.sink.rounds:
                        await self.sink.wait_oldest(settings.poll_interval_s)
                    else:
                        await _sleep(stop, settings.poll_interval_s)
            await self._drain()
        finally:
            await self.sink.stop()
            self._save()
            for tail in self.tails.values():
                tail.close()
            self.tails.clear()

    async def _drain(self) -> None:
        """On a clean stop: what was read goes out, and its acknowledgement is waited for (bounded)."""
        if self.sink.producer is None:
            return
        deadline = time.monotonic() + self.settings.request_timeout_s
        try:
            await self.sink.send()
            while self.sink.rounds and time.monotonic() < deadline:
                await self.sink.wait_oldest(0.2)
                self.settle()
        except Exception as exc:
            log.warning("records not acknowledged at shutdown; they are re-read next start", error=type(exc).__name__)


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass


def _undo_handover(tail: FileTail, rewind_older: bool) -> None:
    """A head taken over across a rotation and not acknowledged: the older file reads it again."""
    if tail.carried is not None:
        older = tail.carried[0]
        older.handed = False
        tail.carried = None
        if rewind_older:
            older.rewind()


def _changed(known: Known, st: os.stat_result) -> bool:
    if known.size < 0:
        return True
    return st.st_size != known.size or (known.mtime is not None and st.st_mtime_ns != known.mtime)


def _directories(path: str) -> list[str]:
    """Where a file renamed away from `path` is looked for: beside it, and beside the file a
    symlink at `path` pointed to (Kubernetes' /var/log/containers -> /var/log/pods)."""
    out = [os.path.dirname(path)]
    real = os.path.dirname(os.path.realpath(path))
    if real not in out:
        out.append(real)
    return out


def _listing(directory: str) -> dict[str, tuple[str, os.stat_result]]:
    out: dict[str, tuple[str, os.stat_result]] = {}
    try:
        with os.scandir(directory) as entries:
            for e in entries:
                try:
                    if e.is_file(follow_symlinks=False):
                        st = e.stat(follow_symlinks=False)
                        out[identity(st)] = (e.path, st)
                except OSError:
                    continue
    except OSError:
        pass
    return out


def _own_files(registry: Path) -> str:
    return os.path.abspath(registry)


def _is_own(path: str, registry: str) -> bool:
    """The registry, its temp file and the damaged ones kept aside: a glob matching them ships nothing."""
    path = os.path.abspath(path)
    return path == registry or path.startswith(registry + ".")
