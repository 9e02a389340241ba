"""File inputs against the real broker: positions across restarts, rotation by rename and by
copy-truncate (as logrotate does them), truncation, deletion while open, inode reuse."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import orjson

from collector.tail.registry import Registry
from tests.tail.conftest import delivered, exactly_once, records, running, settings, until


def write(path: Path, lines: list[str]) -> None:
    with open(path, "a") as out:
        out.write("".join(f"{line}\n" for line in lines))


def rename_then_write(log: Path, to: Path, late: list[str]) -> None:
    """nginx keeps writing to its descriptor until it is told to reopen."""
    with open(log, "a") as writer:
        os.rename(log, to)
        writer.write("".join(f"{line}\n" for line in late))


def truncate_and_regrow(log: Path, new: list[str]) -> None:
    with open(log, "r+") as fh:
        fh.truncate(0)
        fh.write("".join(f"{line}\n" for line in new))


def unlink_then_write(log: Path, last: list[str], tail: str) -> None:
    with open(log, "a") as writer:
        os.unlink(log)
        writer.write("".join(f"{line}\n" for line in last) + tail)


def lines(tag: str, n: int, start: int = 0) -> list[str]:
    return [f"{tag} line {i:05d}" for i in range(start, start + n)]


async def test_restart_resumes_where_acknowledged(kafka_bootstrap: str, topic: str, tmp_path: Path) -> None:
    """The issue's case: lines written while the tailer was down are shipped, none twice."""
    log = tmp_path / "app.log"
    first, while_down = lines("a", 30), lines("b", 15)
    write(log, first)
    cfg = settings(kafka_bootstrap, topic, tmp_path, inputs=[{"paths": [str(log)], "service": "api-service"}])
    async with running(cfg) as tailer:
        await until(lambda: delivered(tailer, 30), "30 records")
    write(log, while_down)
    async with running(cfg) as tailer:
        await until(lambda: delivered(tailer, 15), "15 more records")
    async with running(cfg) as tailer:  # nothing new: nothing sent again
        await until(lambda: bool(tailer.tails), "the file opened")
    assert tailer.sink.delivered == 0
    recs = await records(kafka_bootstrap, topic, 45)
    exactly_once(recs, first + while_down)
    assert {r["_key"] for r in recs} == {b"api-service"}
    entry = next(iter(Registry(tmp_path / "registry.json").entries.values()))
    assert entry.offset == log.stat().st_size


async def test_rename_rotation_reads_old_file_to_its_end(kafka_bootstrap: str, topic: str, tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    before, late, after = lines("old", 50), lines("late", 10), lines("new", 50)
    write(log, before)
    cfg = settings(kafka_bootstrap, topic, tmp_path, inputs=[{"paths": [str(log)]}])
    async with running(cfg) as tailer:
        await until(lambda: delivered(tailer, 50), "50 records")
        rename_then_write(log, tmp_path / "access.log.1", late)
        write(log, after)  # the reopened log: a new file under the name
        await until(lambda: delivered(tailer, 110), "110 records")
        await until(lambda: True if len(tailer.tails) == 1 else len(tailer.tails), "the renamed file closed")
    recs = await records(kafka_bootstrap, topic, 110)
    exactly_once(recs, before + late + after)
    assert {r["log"]["file"]["path"] for r in recs} == {str(log)}


async def test_copytruncate_and_regrowth(kafka_bootstrap: str, topic: str, tmp_path: Path) -> None:
    """logrotate copytruncate: copy, then truncate in place. Twice: once the file is read while still
    short, once it has already grown past the old position (only its first line tells)."""
    log = tmp_path / "app.log"
    one, two, three = lines("one", 40), lines("two", 10), lines("three", 200)
    write(log, one)
    cfg = settings(kafka_bootstrap, topic, tmp_path, inputs=[{"paths": [str(log)], "format": "plain"}])
    async with running(cfg) as tailer:
        await until(lambda: delivered(tailer, 40), "40 records")
        shutil.copyfile(log, tmp_path / "app.log.1")
        os.truncate(log, 0)
        await until(lambda: next(iter(tailer.tails.values())).entry.gen == 1, "truncation seen")
        write(log, two)
        await until(lambda: delivered(tailer, 50), "50 records")
        shutil.copyfile(log, tmp_path / "app.log.2")
        truncate_and_regrow(log, three)  # before the tailer looks again
        await until(lambda: delivered(tailer, 250), "250 records")
    recs = await records(kafka_bootstrap, topic, 250)
    exactly_once(recs, one + two + three)
    assert len({r["event"]["id"] for r in recs}) == 250  # offsets repeat across generations, ids do not


async def test_deleted_while_open_is_read_to_the_end(kafka_bootstrap: str, topic: str, tmp_path: Path) -> None:
    log = tmp_path / "job.log"
    first, last = lines("first", 20), lines("last", 5)
    write(log, first)
    cfg = settings(kafka_bootstrap, topic, tmp_path, inputs=[{"paths": [str(tmp_path / "*.log")]}])
    async with running(cfg) as tailer:
        await until(lambda: delivered(tailer, 20), "20 records")
        unlink_then_write(log, last, "no newline at the end")
        await until(lambda: delivered(tailer, 26), "26 records")
        await until(lambda: True if not tailer.tails else len(tailer.tails), "the deleted file closed")
    recs = await records(kafka_bootstrap, topic, 26)
    exactly_once(recs, [*first, *last, "no newline at the end"])
    assert Registry(tmp_path / "registry.json").entries == {}  # forgotten


async def test_reused_inode_is_a_new_file(kafka_bootstrap: str, topic: str, tmp_path: Path) -> None:
    """A registry entry for this device+inode whose first line differs (another file got the inode)."""
    log = tmp_path / "app.log"
    write(log, lines("fresh", 5))
    st = log.stat()
    reg = tmp_path / "registry.json"
    reg.write_bytes(orjson.dumps({"version": 1, "files": {f"{st.st_dev}:{st.st_ino}": {
        "path": str(log), "offset": 30, "gen": 4, "fp": "0123456789abcdef", "seen": 0}}}))
    cfg = settings(kafka_bootstrap, topic, tmp_path, inputs=[{"paths": [str(log)]}])
    async with running(cfg) as tailer:
        await until(lambda: delivered(tailer, 5), "5 records")
        assert next(iter(tailer.tails.values())).entry.gen == 5
    exactly_once(await records(kafka_bootstrap, topic, 5), lines("fresh", 5))


async def test_start_at_end_and_damaged_registry(kafka_bootstrap: str, topic: str, tmp_path: Path) -> None:
    log = tmp_path / "big.log"
    write(log, lines("history", 100))
    (tmp_path / "registry.json").write_text("{not json")
    cfg = settings(kafka_bootstrap, topic, tmp_path, inputs=[{"paths": [str(log)], "start_at": "end"}])
    async with running(cfg) as tailer:
        await until(lambda: bool(tailer.tails), "the file opened")
        write(log, lines("live", 3))
        await until(lambda: delivered(tailer, 3), "3 records")
    exactly_once(await records(kafka_bootstrap, topic, 3), lines("live", 3))
    assert [p.name for p in os.scandir(tmp_path) if p.name.startswith("registry.json.broken-")]


async def test_rotated_while_down_is_found_beside_its_old_name(kafka_bootstrap: str, topic: str,
                                                              tmp_path: Path) -> None:
    """Renamed while the tailer was stopped: the glob no longer matches the old file, the registry
    knows its identity, and its unread end is shipped before it is closed."""
    log = tmp_path / "access.log"
    first, unread, new = lines("first", 10), lines("unread", 7), lines("new", 4)
    write(log, first)
    cfg = settings(kafka_bootstrap, topic, tmp_path, inputs=[{"paths": [str(log)]}])
    async with running(cfg) as tailer:
        await until(lambda: delivered(tailer, 10), "10 records")
    rename_then_write(log, tmp_path / "access.log.1", unread)
    write(log, new)
    async with running(cfg) as tailer:
        await until(lambda: delivered(tailer, 11), "11 records")
        await until(lambda: True if len(tailer.tails) == 1 else len(tailer.tails), "the rotated file closed")
    exactly_once(await records(kafka_bootstrap, topic, 21), first + unread + new)


async def test_long_lines_in_pieces_and_oversized_records_cut(kafka_bootstrap: str, topic: str,
                                                             tmp_path: Path) -> None:
    """A line longer than max_line_bytes ships in pieces, whether the reader sees it whole or in parts;
    a piece whose JSON would not fit a Kafka batch (control characters escape to six bytes each) is
    cut, marked, and still shipped."""
    log = tmp_path / "big.log"
    long_line = "".join(chr(ord("a") + i % 26) for i in range(300_000))
    escapes = "\x01" * 400_000
    write(log, [long_line, escapes, "after"])
    cfg = settings(kafka_bootstrap, topic, tmp_path, inputs=[{"paths": [str(log)], "format": "raw",
                                                             "multiline": {"mode": "off"}}],
                   max_line_bytes=256 * 1024)
    async with running(cfg) as tailer:
        await until(lambda: delivered(tailer, 5), "5 records")
    recs = await records(kafka_bootstrap, topic, 5)
    messages = [r["message"] for r in recs]
    assert "".join(messages[:2]) == long_line and len(messages[0]) == 256 * 1024
    marker = " [cut by elk-tail: too large for a Kafka record]"
    assert messages[2].endswith(marker) and set(messages[2].removesuffix(marker)) == {"\x01"}
    assert messages[3] == "\x01" * (400_000 - 256 * 1024)  # fits: whole
    assert messages[4] == "after"
