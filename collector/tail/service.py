"""The tailer's loop: scan -> read -> join -> parse -> batch -> send -> settle -> registry.

Backpressure: reading stops while more than `max_inflight_bytes` are unacknowledged, so while
Kafka is away the files are the buffer and memory stays bounded. A failed delivery rewinds every
file to its last acknowledged record and reconnects with backoff; the re-sent records carry the
same ids and bytes, so they collapse in the index.
"""

from __future__ import annotations

import asyncio
import fnmatch
import os
import socket
import stat
import time
from pathlib import Path

import orjson

import collector
from collector.tail.docker import JsonFileDecoder
from collector.tail.inputs import file_source, matches
from collector.tail.multiline import Joined
from collector.tail.reader import FileTail, Source, head_fingerprint, identity
from collector.tail.record import Builder
from collector.tail.registry import Entry, Registry
from collector.tail.settings import TailSettings
from collector.tail.sink import OVERHEAD, KafkaSink

log = collector.get_logger("collector.tail")

CHUNK = 256 * 1024  # bytes read from one file before the next file gets its turn
TRUNCATED = " [cut by elk-tail: too large for a Kafka record]"


class Tailer:
    def __init__(self, settings: TailSettings):
        self.settings = settings
        self.registry = Registry(settings.registry_path)
        self.tails: dict[str, FileTail] = {}
        self.finished: set[str] = set()  # detached files whose last record is out
        self.docker_sources: dict[Path, Source] = {}
        self.builder = Builder(settings.host_name or socket.gethostname())
        self.sink = KafkaSink(settings.kafka_bootstrap_servers, settings.topic, settings.batch_linger_ms,
                              settings.request_timeout_s, compression=settings.compression)
        self.first_scan = True
        self.paused = False

    # -- files ---------------------------------------------------------------------------------------
    def scan(self) -> None:
        now = time.time()
        for path, cfg, docker in matches(self.settings, self.docker_sources):
            try:
                st = os.stat(path)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            key = identity(st)
            tail = self.tails.get(key)
            if tail is not None:
                tail.path = path
                tail.detached_at = None
                continue
            source = docker if docker is not None else file_source(cfg, path)  # type: ignore[arg-type]
            start_at_end = cfg is not None and cfg.start_at == "end" and self.first_scan
            self._open(path, key, source, start_at_end, now)
        if self.first_scan:
            self._resume_rotated(now)
        for tail in self.tails.values():
            try:
                here = identity(os.stat(tail.path)) == tail.key
            except OSError:
                here = False
            if not here and tail.detached_at is None:
                tail.detached_at = now
        self.first_scan = False

    def _resume_rotated(self, now: float) -> None:
        """Files in the registry that were renamed while we were down (logrotate, Docker's max-size):
        found by identity beside their old name, read to their end, then closed."""
        for key, entry in list(self.registry.entries.items()):
            if key in self.tails:
                continue
            directory = os.path.dirname(entry.path)
            try:
                found = next((e.path for e in os.scandir(directory) if e.is_file(follow_symlinks=False)
                              and identity(e.stat()) == key and e.stat().st_size > entry.offset), None)
            except OSError:
                found = None
            if found is None:
                continue
            source = self._source_of(entry.path)
            if source is not None and self._open(found, key, source, False, now):
                self.tails[key].detached_at = now

    def _source_of(self, path: str) -> Source | None:
        for cfg in self.settings.inputs:
            if any(fnmatch.fnmatch(path, pattern) for pattern in cfg.paths):
                return file_source(cfg, path)
        return self.docker_sources.get(Path(path).parent)

    def _open(self, path: str, key: str, source: Source, start_at_end: bool, now: float) -> bool:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return False
        st = os.fstat(fd)
        if identity(st) != key:  # replaced between stat and open: the next scan
            os.close(fd)
            return False
        entry = self.registry.get(key)
        if entry is not None:
            head = head_fingerprint(fd)
            if (entry.fp and head != entry.fp) or st.st_size < entry.offset:
                # an inode reused by another file, or truncated while we were away: a new generation
                entry = Entry(path=path, offset=0, gen=entry.gen + 1)
                log.info("file replaced since last run; reading it from the start", path=path)
        else:
            entry = Entry(path=path, offset=st.st_size if start_at_end else 0)
            if entry.offset:
                entry.fp = head_fingerprint(fd) or ""
        entry.seen = now
        self.registry.put(key, entry)
        decoder = JsonFileDecoder() if source.docker else None
        self.tails[key] = FileTail(path, fd, st, entry, source, self.settings.max_line_bytes, decoder)
        log.info("tailing", path=path, service=source.service, offset=entry.offset, format=source.fmt)
        return True

    def _new_generation(self, tail: FileTail, why: str) -> None:
        log.info(f"file {why}; reading it from the start", path=tail.path)
        tail.new_generation()
        self.finished.discard(tail.key)
        self.registry.put(tail.key, tail.entry)
        self.registry.save()  # the new generation's ids must be the ones used after a crash too

    def _close_finished(self, now: float) -> None:
        busy = set(self.sink.open.marks)
        for round_ in self.sink.rounds:
            busy.update(round_.marks)
        for key in list(self.finished):
            tail = self.tails[key]
            if tail in busy or now - tail.idle_since < self.settings.close_inactive_s:
                continue
            if tail.deleted():
                self.registry.drop(key)
            else:
                tail.entry.seen = time.time()
                self.registry.dirty = True
            tail.close()
            del self.tails[key]
            self.finished.discard(key)
            log.info("closed", path=tail.path)

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
        limit = self.settings.max_inflight_bytes
        for start, end, raw in lines:
            if sink.full(limit):
                tail.unread(start)  # the bound holds per record, not per chunk read
                self.paused = True
                return
            if decoder is not None:
                decoded = decoder(start, end, raw)
                if decoded is None:
                    continue
                start, end, text, attrs = decoded
            else:
                text = raw.decode("utf-8", "replace")
                attrs = None
            for joined in joiner.feed(start, end, text, attrs, now):
                self._emit(tail, joined)

    def read_some(self, now: float) -> bool:
        """One pass over the files; True when any had new data."""
        moved = False
        self.paused = False
        limit = self.settings.max_inflight_bytes
        for tail in list(self.tails.values()):
            if self.sink.full(limit):
                self.paused = True
                return moved
            if tail.key in self.finished:
                continue
            if tail.at_eof and tail.changed_under_us():
                # checked before reading on after a pause: copy-truncate that regrew past our position
                # shows only in its first line, and no line of the new content may be read as old
                self._new_generation(tail, "truncated or rewritten")
            lines = tail.read(CHUNK)
            if lines:
                moved = True
                tail.idle_since = now
                tail.at_eof = False
                self._lines(tail, lines, now)
                if self.paused:
                    return moved
                continue
            tail.at_eof = True
            joined = tail.joiner.due(now)
            if joined is not None:
                self._emit(tail, joined)
            if tail.detached_at is not None and now - tail.idle_since >= self.settings.close_inactive_s:
                # renamed or deleted, read to its end and quiet: the last partial line and record go out
                self._lines(tail, tail.rest_of_file(), now)
                last = tail.joiner.flush()
                if last is not None:
                    self._emit(tail, last)
                self.finished.add(tail.key)
        return moved

    def settle(self) -> None:
        for done in self.sink.settled():
            for tail, (gen, end) in done.marks.items():
                tail.acknowledged(gen, end)
            self.registry.dirty = True

    async def _fail(self, exc: BaseException) -> None:
        log.warning("kafka delivery failed; re-reading unacknowledged lines after reconnecting",
                    error=type(exc).__name__, detail=str(exc)[:200])
        await self.sink.stop()
        for tail in self.tails.values():
            tail.rewind()
        self.finished.clear()

    async def _connect(self, stop: asyncio.Event) -> bool:
        backoff = 0.5
        while not stop.is_set():
            try:
                await self.sink.start()
                log.info("kafka connected", topic=self.settings.topic)
                return True
            except Exception as exc:
                log.warning("kafka unavailable; reading paused", error=type(exc).__name__, retry_in_s=backoff)
                try:
                    await asyncio.wait_for(stop.wait(), timeout=backoff)
                except TimeoutError:
                    pass
                backoff = min(backoff * 2, 5.0)
        return False

    # -- the loop ------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        if self.registry.problem:
            log.error(self.registry.problem)
        settings = self.settings
        last_scan = last_save = 0.0
        try:
            while not stop.is_set():
                if self.sink.producer is None and not await self._connect(stop):
                    break
                now = time.monotonic()
                if now - last_scan >= settings.scan_interval_s:
                    self.scan()
                    last_scan = now
                try:
                    moved = self.read_some(now)
                    if self.sink.due() or (self.sink.open.records and not moved):
                        await self.sink.send()
                    self.settle()
                except Exception as exc:
                    await self._fail(exc)
                    continue
                self._close_finished(now)
                if self.registry.dirty and now - last_save >= settings.registry_flush_s:
                    self.registry.save()
                    last_save = now
                if not moved or self.paused:
                    if self.sink.rounds:
                        await self.sink.wait_oldest(settings.poll_interval_s)
                    else:
                        try:
                            await asyncio.wait_for(stop.wait(), timeout=settings.poll_interval_s)
                        except TimeoutError:
                            pass
            await self._drain()
        finally:
            await self.sink.stop()
            self.registry.save()
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
