"""Stack traces joined into one record: Python, Java and Node traces printed by the real runtimes,
Go's panic format, PostgreSQL's DETAIL lines; per-input patterns; bounds and the flush timeout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from collector.tail.multiline import Joined, Joiner
from collector.tail.settings import Multiline


def join(lines: list[str], cfg: Multiline | None = None) -> list[str]:
    joiner = Joiner(cfg or Multiline())
    out: list[Joined] = []
    offset = 0
    for line in lines:
        end = offset + len(line.encode()) + 1
        out += joiner.feed(offset, end, line, None, 0.0)
        offset = end
    last = joiner.flush()
    return [j.text for j in out + ([last] if last else [])]


def _around(trace: str) -> list[str]:
    return ["INFO before", *trace.rstrip("\n").split("\n"), "INFO after"]


def test_python_traceback_chained(tmp_path: Path) -> None:
    code = "try:\n    {}['k']\nexcept KeyError as e:\n    raise ValueError('bad value') from e\n"
    err = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stderr
    assert "The above exception was the direct cause" in err
    records = join([*err.rstrip("\n").split("\n"), "INFO after"])
    assert records == [err.rstrip("\n"), "INFO after"]  # the blank line between the chained tracebacks kept


def test_python_logging_exception_joins_message_and_trace() -> None:
    code = ("import logging\nlogging.basicConfig(format='%(levelname)s %(message)s')\n"
            "try:\n    1/0\nexcept ZeroDivisionError:\n    logging.exception('payment failed')\n"
            "logging.error('next one')\n")
    err = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stderr
    records = join(err.rstrip("\n").split("\n"))
    assert len(records) == 2
    assert records[0].startswith("ERROR payment failed\nTraceback") and records[0].endswith("division by zero")
    assert records[1] == "ERROR next one"


def test_java_stack_trace_with_cause(tmp_path: Path) -> None:
    source = tmp_path / "Boom.java"
    source.write_text("""
public class Boom {
    static void inner() { throw new IllegalStateException("inner"); }
    public static void main(String[] a) {
        System.out.println("INFO start");
        try { inner(); } catch (Exception e) {
            System.out.println("ERROR failed");
            new RuntimeException("outer", e).printStackTrace(System.out);
        }
        System.out.println("INFO done");
    }
}
""")
    out = subprocess.run(["java", str(source)], capture_output=True, text=True, timeout=60).stdout
    assert "Caused by: java.lang.IllegalStateException: inner" in out and "\tat Boom" in out
    records = join(out.rstrip("\n").split("\n"))
    assert len(records) == 3, records
    assert records[1].startswith("ERROR failed\njava.lang.RuntimeException: outer\n\tat ")
    assert records[1].endswith(" more")  # "\t... N more"
    assert records[2] == "INFO done"


def test_node_error_stack() -> None:
    script = "console.log('INFO start'); console.log(new TypeError('bad type').stack); console.log('INFO done')"
    out = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=30).stdout
    records = join(out.rstrip("\n").split("\n"))
    assert len(records) == 3
    assert records[1].startswith("TypeError: bad type\n    at ")


GO_PANIC = """panic: assignment to entry in nil map

goroutine 1 [running]:
main.main()
\t/tmp/gop/main.go:2 +0x28

goroutine 6 [chan receive]:
main.worker(0xc000012345)
\t/tmp/gop/main.go:9 +0x3f
created by main.main in goroutine 1
\t/tmp/gop/main.go:5 +0x25
exit status 2"""


def test_go_panic() -> None:
    records = join(_around(GO_PANIC))
    assert records == ["INFO before", GO_PANIC, "INFO after"]


def test_postgres_detail_lines() -> None:
    lines = ['2026-12-02 10:00:00.100 UTC [9] ERROR:  duplicate key value violates unique constraint "k"',
             "2026-12-02 10:00:00.100 UTC [9] DETAIL:  Key (id)=(1) already exists.",
             "2026-12-02 10:00:00.100 UTC [9] STATEMENT:  insert into t values (1)",
             "2026-12-02 10:00:01.000 UTC [9] LOG:  checkpoint starting: time"]
    assert join(lines) == ["\n".join(lines[:3]), lines[3]]


def test_json_lines_never_join() -> None:
    assert join(['{"a": 1}', '{"b": 2}', "  {not json}"]) == ['{"a": 1}', '{"b": 2}\n  {not json}']


def test_pattern_per_input() -> None:
    cfg = Multiline(mode="pattern", start=r"^\[\d{4}-")
    lines = ["[2026-12-02] one", "more of one", "[2026-12-02] two"]
    assert join(lines, cfg) == ["[2026-12-02] one\nmore of one", "[2026-12-02] two"]
    cfg = Multiline(mode="pattern", **{"continue": r"^\+"})
    assert join(["a", "+b", "c"], cfg) == ["a\n+b", "c"]
    assert join(["a", "  b"], Multiline(mode="off")) == ["a", "  b"]


def test_bounds_cut_without_dropping() -> None:
    lines = ["Traceback (most recent call last):"] + [f"  frame {i}" for i in range(25)]
    records = join(lines, Multiline(max_lines=10))
    assert [len(r.split("\n")) for r in records] == [10, 10, 6]
    assert "\n".join(records) == "\n".join(lines)
    big = join(["head", *(["  " + "x" * 100] * 50)], Multiline(max_bytes=1024))
    assert all(len(r) <= 1024 + 110 for r in big) and len(big) > 1


def test_flush_timeout() -> None:
    joiner = Joiner(Multiline(timeout_s=0.5))
    assert joiner.feed(0, 6, "first", None, 10.0) == []
    assert joiner.due(10.4) is None
    done = joiner.due(10.5)
    assert done is not None and (done.start, done.end, done.text) == (0, 6, "first")


def test_traceback_after_a_json_line_is_its_own_record() -> None:
    """A JSON record is whole: the traceback printed after it (on stderr) is not joined into it, so
    the JSON record keeps its fields; the same for a Java exception."""
    json_line = '{"level":"error","trace_id":"abc","msg":"payment failed"}'
    trace = ["Traceback (most recent call last):", '  File "a.py", line 1, in <module>', "ValueError: bad"]
    java = ["java.lang.IllegalStateException: boom", "\tat com.shop.Main.main(Main.java:5)"]
    assert join([json_line, *trace, json_line, *java]) == [json_line, "\n".join(trace), json_line, "\n".join(java)]


def test_the_reader_shortcut_never_splits_what_the_rules_join() -> None:
    """The tailer skips `feed` for a line the next one cannot continue (`Joiner.alone`): the records
    are the same as the full rules give."""
    lines = ['10.0.0.1 - - [02/Dec/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "x"',
             '::1 - - [02/Dec/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "x"',
             '{"level":30,"time":1,"msg":"a"}', '{"level":50,"time":2,"msg":"b"}',
             "Traceback (most recent call last):", '  File "a.py", line 1, in <module>', "ValueError: bad",
             '{"level":30,"msg":"c"}', "    at f (a.js:1:1)", "2026-12-02 10:00:00,250 ERROR app: failed",
             "java.lang.IllegalStateException: boom", "\tat com.shop.Main.main(Main.java:5)",
             "2026-12-02 10:00:00.100 UTC [9] ERROR:  duplicate key",
             "2026-12-02 10:00:00.100 UTC [9] DETAIL:  Key (id)=(1) already exists.",
             "1:M 02 Dec 2026 10:00:00.123 * Ready", "127.0.0.1 - - [02/Dec/2026:10:00:00 +0000] \"GET /\" 200 1",
             '{"msg":"x"}', "Traceback (most recent call last):", "ValueError: y",
             "10.0.0.2 - - [02/Dec/2026:10:00:00 +0000] \"GET /\" 200 1", "2026-12-02 10:00:00.100 UTC [9] LOG:  z",
             "panic: boom", "", "goroutine 1 [running]:", "main.main()", '{"msg":"d"}', "{}", "1:M x", "2:M y"]
    joiner = Joiner(Multiline())
    got: list[str] = []
    shortcuts = 0
    for index, line in enumerate(lines):
        after = lines[index + 1].encode() if index + 1 < len(lines) else None
        records = joiner.alone(0, 1, line, None, line.encode(), after) if after is not None else None
        if records is not None:
            shortcuts += 1
        else:
            records = joiner.feed(0, 1, line, None, 0.0)
        got += [j.text for j in records]
    last = joiner.flush()
    assert got + ([last.text] if last else []) == join(lines)
    assert shortcuts >= 6
