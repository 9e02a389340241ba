"""A week of uptime and a thousand files: registry entries of open files, the open-file bound,
fair serving under backpressure, a registry that cannot be written, rewrites while behind
(issue 22). Against the real broker; time is injected where a test needs days."""

from __future__ import annotations

import asyncio
import errno
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from collector.tail import registry as registry_mod
from collector.tail.registry import Entry, Registry
from collector.tail.service import Tailer
from tests.tail.conftest import delivered, exactly_once, records, running, settings, until

DAY = 86400.0


def write(path: Path, lines: list[str]) -> None:
    with open(path, "a") as out:
        out.write("".join(f"{line}\n" for line in lines))


def rewrite(path: Path, content: list[str]) -> None:
    """Truncate in place and write anew (the same inode), as copytruncate and report jobs do."""
    with open(path, "r+") as fh:
        fh.truncate(0)
        fh.write("".join(f"{line}\n" for line in content))


def lines(tag: str, n: int, start: int = 0) -> list[str]:
    return [f"{tag} line {i:05d}" for i in range(start, start + n)]


class Clock:
    def __init__(self) -> None:
        self.now = 1_796_205_600.0

    def __call__(self) -> float:
        return self.now


# -- 1: an open file's entry never expires ----------------------------------------------------------
async def test_open_file_entry_survives_a_week(kafka_bootstrap: str, topic: str, tmp_path: Path) -> None:
    """A file open for 8 days (Docker's json-file logs are never rotated by default) keeps its
    position: the restart after it ships only what is new."""
    log = tmp_path / "app.log"
    write(log, lines("day0", 20))
    clock = Clock()
    cfg = settings(kafka_bootstrap, topic, tmp_path, inputs=[{"paths": [str(log)]}])
    async with running(cfg, Tailer(cfg, clock=clock)) as tailer:
        await until(lambda: delivered(tailer, 20), "20 records")
        for day in range(1, 9):  # a line a day, each acknowledged and the registry written that day
            clock.now += DAY
            write(log, lines(f"day{day}", 1))
            await until(lambda n=20 + day: delivered(tailer, n), f"day {day}'s record")
            await until(lambda: not tailer.registry.dirty, "the registry written")
    assert len(Registry(tmp_path / "registry.json").entries) == 1
    write(log, lines("after", 3))
    async with running(cfg, Tailer(cfg, clock=clock)) as tailer:
        await until(lambda: delivered(tailer, 3), "3 records")
    exactly_once(await records(kafka_bootstrap, topic, 31),
                 lines("day0", 20) + [f"day{d} line 00000" for d in range(1, 9)] + lines("after", 3))


# -- 2: a bound on open files -------------------------------------------------------------------------
async def test_more_files_than_the_bound_are_all_read(kafka_bootstrap: str, topic: str, tmp_path: Path) -> None:
    """30 files, 8 descriptors: every file read in turn, never more than 8 open, waits counted."""
    files = [tmp_path / f"f{i:02d}.log" for i in range(30)]
    expected = []
    for i, f in enumerate(files):
        expected += lines(f"f{i:02d}", 40)
        write(f, lines(f"f{i:02d}", 40))
    cfg = settings(kafka_bootstrap, topic, tmp_path, inputs=[{"paths": [str(tmp_path / "*.log")]}],
                   max_open_files=8)
    most = 0

    def progress() -> Any:
        nonlocal most
        most = max(most, len(tailer.tails))
        return delivered(tailer, 1200)

    async with running(cfg) as tailer:
        await until(progress, "1200 records")
        assert tailer.counters["files_waited"] == 22
        late = lines("late", 5)
        write(files[0], late)  # a parked file that changes is opened again, at its position
        await until(lambda: delivered(tailer, 1205), "the late lines")
    assert most <= 8, most
    exactly_once(await records(kafka_bootstrap, topic, 1205), expected + late)


def _tail_process(bootstrap: str, topic: str, tmp: Path, pattern: str, nofile: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAIL_")}
    env.update({"TAIL_KAFKA_BOOTSTRAP_SERVERS": bootstrap, "TAIL_TOPIC": topic,
                "TAIL_REGISTRY_PATH": str(tmp / "state" / "registry.json"), "TAIL_SCAN_INTERVAL_S": "0.2",
                "TAIL_CLOSE_INACTIVE_S": "0.5", "TAIL_INPUTS": orjson.dumps([{"paths": [pattern]}]).decode()})

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    out = open(tmp / "tail.out", "ab")
    try:
        return subprocess.Popen([sys.executable, "-m", "collector.cli", "tail"], env=env, stdout=out,
                                stderr=subprocess.STDOUT, preexec_fn=limit)
    finally:
        out.close()


async def test_descriptor_limit_of_256_and_400_files(kafka_bootstrap: str, topic: str, tmp_path: Path) -> None:
    """The issue's case: RLIMIT_NOFILE 256, 400 files. Every line shipped, the service alive, the
    wait said once."""
    logs = tmp_path / "logs"
    logs.mkdir()
    expected = []
    for i in range(400):
        expected += lines(f"f{i:03d}", 5)
        write(logs / f"f{i:03d}.log", lines(f"f{i:03d}", 5))
    proc = _tail_process(kafka_bootstrap, topic, tmp_path, str(logs / "*.log"), 256)
    try:
        recs = await records(kafka_bootstrap, topic, 2000)
        alive = proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(30)
    output = (tmp_path / "tail.out").read_text()
    assert alive, output[-2000:]
    exactly_once(recs, expected)
    assert output.count("open-file limit reached") == 1, output[-2000:]
    assert len(Registry(tmp_path / "state" / "registry.json").entries) == 400


# -- 3: fair serving under backpressure ----------------------------------------------------------------
async def test_busy_file_does_not_starve_the_others(kafka_bootstrap: str, topic: str, tmp_path: Path) -> None:
    busy, quiet = tmp_path / "a-busy.log", tmp_path / "b-quiet.log"
    write(busy, [f"busy {i:06d} " + "x" * 100 for i in range(30_000)])  # 3.4 MB: 50 times the bound
    write(quiet, lines("quiet", 100))
    cfg = settings(kafka_bootstrap, topic, tmp_path, inputs=[{"paths": [str(busy), str(quiet)]}],
                   max_inflight_bytes=64 * 1024)
    async with running(cfg) as tailer:
        await until(lambda: len(tailer.tails) == 2 or len(tailer.tails), "both files open")
        by_path = {t.path: t for t in tailer.tails.values()}
        q, b = by_path[str(quiet)], by_path[str(busy)]
        size = quiet.stat().st_size
        await until(lambda: True if q.committed == size else (q.committed, b.committed), "the quiet file shipped")
        assert b.committed < busy.stat().st_size // 4, "the quiet file waited for the busy one"


# -- 6: a registry that cannot be written ---------------------------------------------------------------
def _good_registry(path: Path) -> Registry:
    reg = Registry(path)
    for i in range(50):
        reg.put(f"1:{i}", Entry(path=f"/var/log/f{i}.log", offset=1000 + i, fp="ab" * 8, seen=1.0))
    assert reg.save(now=2.0) is not False
    return reg


def test_short_write_never_replaces_the_good_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "registry.json"
    reg = _good_registry(path)
    good = path.read_bytes()
    real_write = os.write

    def short(fd: int, data: Any) -> int:  # a disk that fills during the write
        written = real_write(fd, bytes(data[: len(data) // 2]))
        monkeypatch.setattr(registry_mod.os, "write", lambda fd, data: 0)
        return written

    reg.put("1:99", Entry(path="/var/log/new.log", offset=5, seen=1.0))
    monkeypatch.setattr(registry_mod.os, "write", short)
    assert reg.save(now=2.0) is False
    monkeypatch.undo()
    assert path.read_bytes() == good
    assert not list(tmp_path.glob("registry.json.*")), "no temp or broken file left"
    assert Registry(path).problem is None and len(Registry(path).entries) == 50


def test_no_space_at_all_is_reported_not_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "registry.json"
    reg = _good_registry(path)

    def full(fd: int, data: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(registry_mod.os, "write", full)
    assert reg.save(now=2.0) is False
    monkeypatch.undo()
    assert "No space" in str(reg.save_error)
    assert reg.save(now=2.0) is True  # space again: written
    assert len(Registry(path).entries) == 50


def test_unreadable_registry_is_merged_once_it_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "registry.json"
    _good_registry(path)
    real = Path.read_bytes

    def eio(self: Path) -> bytes:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(Path, "read_bytes", eio)
    reg = Registry(path)
    assert reg.problem and not reg.entries
    reg.put("9:9", Entry(path="/var/log/x.log", offset=3, seen=1.0))
    assert reg.save(now=2.0) is False  # the file may hold good positions: not replaced
    monkeypatch.setattr(Path, "read_bytes", real)
    assert reg.save(now=2.0) is True
    assert len(Registry(path).entries) == 51


async def test_registry_that_cannot_be_written_keeps_the_service_running(kafka_bootstrap: str, topic: str,
                                                                          tmp_path: Path) -> None:
    """A real I/O error while running (the registry's directory replaced by a file): the lines still
    ship, the failure is counted."""
    log = tmp_path / "app.log"
    write(log, lines("a", 10))
    state = tmp_path / "state"
    cfg = settings(kafka_bootstrap, topic, tmp_path, inputs=[{"paths": [str(log)]}],
                   registry_path=state / "registry.json")
    async with running(cfg) as tailer:
        await until(lambda: delivered(tailer, 10), "10 records")
        shutil.rmtree(state)
        state.write_text("not a directory")
        write(log, lines("b", 10))
        await until(lambda: delivered(tailer, 20), "20 records")
        assert tailer.counters["registry_save_failures"] >= 1
    exactly_once(await records(kafka_bootstrap, topic, 20), lines("a", 10) + lines("b", 10))


# -- 5: copy-truncate and rewrites ------------------------------------------------------------------------
async def test_copytruncate_while_behind(kafka_bootstrap: str, topic: str, tmp_path: Path) -> None:
    """Truncated and regrown past our position while we were behind (backpressure): the new content
    is read from its start, once, never at the old offset."""
    log = tmp_path / "app.log"
    old = [f"old {i:05d} " + "o" * 100 for i in range(3000)]
    new = [f"new {i:05d} " + "n" * 100 for i in range(3000)]
    write(log, old)
    cfg = settings(kafka_bootstrap, topic, tmp_path, inputs=[{"paths": [str(log)], "format": "plain"}],
                   max_inflight_bytes=64 * 1024)
    async with running(cfg) as tailer:
        await until(lambda: True if tailer.sink.delivered > 0 else 0, "reading begun")
        shutil.copyfile(log, tmp_path / "app.log.1")
        rewrite(log, new)
        tail = next(iter(tailer.tails.values()))
        size = log.stat().st_size
        await until(lambda: True if tail.committed == size and tail.entry.gen == 1 else tail.committed,
                    "the new content acknowledged")
        sent = tailer.sink.delivered
    recs = await records(kafka_bootstrap, topic, sent)
    got = [r["message"] for r in recs]
    assert sorted(m for m in got if m.startswith("new")) == new  # each new line once
    assert len(got) == len(set(got)) and set(got) <= set(old) | set(new)


async def test_rewrite_with_the_same_first_line(kafka_bootstrap: str, topic: str, tmp_path: Path) -> None:
    """A CSV rewritten in place with its header: the first line alone cannot tell, the bytes before
    our position do; while running and across a restart (an inode reused with the same header)."""
    log = tmp_path / "report.csv"
    header = "time,level,message"
    first = [f"2026-12-0{1 + i % 5},info,first {i}" for i in range(40)]
    second = [f"2026-12-0{1 + i % 5},warn,second run {i}" for i in range(60)]
    third = [f"2026-12-0{1 + i % 5},error,third run {i}" for i in range(80)]
    write(log, [header, *first])
    cfg = settings(kafka_bootstrap, topic, tmp_path, inputs=[{"paths": [str(log)], "format": "plain",
                                                             "multiline": {"mode": "off"}}])
    async with running(cfg) as tailer:
        await until(lambda: delivered(tailer, 41), "41 records")
        rewrite(log, [header, *second])  # truncated and rewritten before the tailer looks: longer than before
        await until(lambda: delivered(tailer, 102), "102 records")
    rewrite(log, [header, *third])  # rewritten in place while the tailer is down
    async with running(cfg) as tailer:
        await until(lambda: delivered(tailer, 81), "81 records")
    recs = await records(kafka_bootstrap, topic, 41 + 61 + 81)
    assert sorted(r["message"] for r in recs) == sorted([header, *first, header, *second, header, *third])
    assert len({r["event"]["id"] for r in recs}) == len(recs)


# -- 7: Kubernetes' symlinked logs rotated while the tailer is down -------------------------------------
async def test_symlinked_log_rotated_while_down(kafka_bootstrap: str, topic: str, tmp_path: Path) -> None:
    """/var/log/containers/*.log -> /var/log/pods/<pod>/<container>/0.log; the kubelet renames 0.log
    to 0.log.<time> and starts a new 0.log: the rotated file is found beside the symlink's target."""
    pod = tmp_path / "pods" / "shop_api-7d9_0a1b" / "api"
    pod.mkdir(parents=True)
    links = tmp_path / "containers"
    links.mkdir()
    (links / "api-7d9_shop_api-0a1b.log").symlink_to(pod / "0.log")
    first, unread, new = lines("first", 10), lines("unread", 7), lines("new", 4)
    write(pod / "0.log", first)
    cfg = settings(kafka_bootstrap, topic, tmp_path, inputs=[{"paths": [str(links / "*.log")], "format": "plain"}])
    async with running(cfg) as tailer:
        await until(lambda: delivered(tailer, 10), "10 records")
    write(pod / "0.log", unread)
    os.rename(pod / "0.log", pod / "0.log.20261206-140000")
    write(pod / "0.log", new)
    async with running(cfg) as tailer:
        recs = await records(kafka_bootstrap, topic, 21)
    exactly_once(recs, first + unread + new)


# -- 9: smaller ------------------------------------------------------------------------------------------
async def test_glob_matching_the_registry_ships_none_of_it(kafka_bootstrap: str, topic: str, tmp_path: Path) -> None:
    app = tmp_path / "app"
    write(app, lines("a", 5))
    cfg = settings(kafka_bootstrap, topic, tmp_path, inputs=[{"paths": [str(tmp_path / "*")], "format": "plain",
                                                             "exclude": []}])
    async with running(cfg) as tailer:
        await until(lambda: delivered(tailer, 5), "5 records")
        await until(lambda: (tmp_path / "registry.json").exists(), "the registry written")
        write(app, lines("b", 5))  # scans go on while these are read and acknowledged
        await until(lambda: delivered(tailer, 10), "10 records")
    exactly_once(await records(kafka_bootstrap, topic, 10), lines("a", 5) + lines("b", 5))


async def test_rotated_file_resumed_only_if_not_excluded(kafka_bootstrap: str, topic: str, tmp_path: Path) -> None:
    """A file excluded since the last run is not resumed through the registry when it was rotated."""
    app, debug = tmp_path / "app.log", tmp_path / "debug.log"
    write(app, lines("app", 5))
    write(debug, lines("debug", 5))
    cfg = settings(kafka_bootstrap, topic, tmp_path, inputs=[{"paths": [str(tmp_path / "*.log")], "format": "plain"}])
    async with running(cfg) as tailer:
        await until(lambda: delivered(tailer, 10), "10 records")
    write(debug, lines("debug-late", 5))
    os.rename(debug, tmp_path / "debug.log.1")
    write(app, lines("app-late", 3))
    cfg = settings(kafka_bootstrap, topic, tmp_path, inputs=[{"paths": [str(tmp_path / "*.log")], "format": "plain",
                                                             "exclude": ["debug.log*"]}])
    async with running(cfg) as tailer:
        await until(lambda: delivered(tailer, 3), "3 records")
        assert [t.path for t in tailer.tails.values()] == [str(app)]
    exactly_once(await records(kafka_bootstrap, topic, 13), lines("app", 5) + lines("debug", 5) + lines("app-late", 3))


async def test_renamed_file_kept_open_for_a_slow_writer(kafka_bootstrap: str, topic: str, tmp_path: Path) -> None:
    """A renamed file stays open for close_renamed_s, not close_inactive_s: its writer may write on
    (nginx before it is told to reopen)."""
    log = tmp_path / "access.log"
    write(log, lines("before", 5))
    cfg = settings(kafka_bootstrap, topic, tmp_path, inputs=[{"paths": [str(log)], "format": "plain"}],
                   close_inactive_s=0.3, close_renamed_s=30.0)
    async with running(cfg) as tailer:
        await until(lambda: delivered(tailer, 5), "5 records")
        writer = os.open(log, os.O_WRONLY | os.O_APPEND)
        try:
            os.rename(log, tmp_path / "access.log.1")
            await until(lambda: True if tailer.finished or not tailer.tails else "reading",
                        "the renamed file read to its end")
            await asyncio.sleep(1.0)  # over three times close_inactive_s of quiet: the case itself
            os.write(writer, "".join(f"{line}\n" for line in lines("late", 3)).encode())
        finally:
            os.close(writer)
        await until(lambda: delivered(tailer, 8), "the late lines")
    exactly_once(await records(kafka_bootstrap, topic, 8), lines("before", 5) + lines("late", 3))


async def test_registry_unreadable_at_start_is_neither_fatal_nor_overwritten(kafka_bootstrap: str, topic: str,
                                                                             tmp_path: Path) -> None:
    """An I/O error reading the registry (here: a directory in its place) is said, the lines ship,
    and what is there is not replaced."""
    log = tmp_path / "app.log"
    write(log, lines("a", 10))
    (tmp_path / "registry.json").mkdir()
    cfg = settings(kafka_bootstrap, topic, tmp_path, inputs=[{"paths": [str(log)]}])
    async with running(cfg) as tailer:
        await until(lambda: delivered(tailer, 10), "10 records")
        await until(lambda: True if tailer.counters["registry_save_failures"] else 0, "a save tried")
    assert (tmp_path / "registry.json").is_dir()
    exactly_once(await records(kafka_bootstrap, topic, 10), lines("a", 10))
