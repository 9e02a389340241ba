"""`collector tail` against rsyslog `imfile` -> `omkafka`, side by side in one run: the same file,
the same broker, a fresh single-partition topic each, acks=all and zstd on both.

Contenders:
  (a) rsyslog  imfile -> omkafka, template `%rawmsg%` (the line as it is), Debian rsyslog-kafka
  (b) ours raw       `collector tail`, format raw, multiline off: the line as the message of a record
  (c) ours parsed    `collector tail`, format auto and the default multiline rules: ECS fields

The file mixes the tutorial's formats in equal parts: nginx combined, pino JSON, Python logging
text (`--mix mixed`), or holds one of them (`--mix nginx,pino`: a run per file, each with every
contender). Each contender is one process started on the complete file; the clock runs from its start
until the topic holds every line; CPU is the process's own (user + system, children included)
read from /proc before it is stopped. Rounds alternate the order; per contender the table gives
its fastest round's lines/s and its lowest CPU (and every round's CPU), in one table for all files.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from bench.bench_shipper import RSYSLOG_BIN, RSYSLOG_MODULES, proc_cpu_s, proc_hwm_mb, stack_env

CONTENDERS = ("rsyslog", "ours-raw", "ours-parsed")
LABEL = {"rsyslog": "(a) rsyslog imfile -> omkafka (raw)", "ours-raw": "(b) collector tail, raw",
         "ours-parsed": "(c) collector tail, parsed (auto + multiline)"}


MIXES = {"mixed": (0, 1, 2), "nginx": (0,), "pino": (1,), "python": (2,)}


def make_file(path: Path, n: int, mix: str = "mixed") -> int:
    """n lines of nginx combined, pino JSON and Python logging text (`mixed`: a third each, else only
    the one named); returns bytes."""
    rng = random.Random(7)
    paths = ["/api/users", "/api/orders?id=42", "/health", "/static/app.js", "/login"]
    kinds = MIXES[mix]
    with open(path, "wb") as out:
        for i in range(n):
            kind = kinds[i % len(kinds)]
            if kind == 0:
                line = (f'10.0.{rng.randrange(256)}.{rng.randrange(256)} - - [02/Dec/2026:10:{i // 60000 % 60:02d}:'
                        f'{i // 1000 % 60:02d} +0000] "GET {rng.choice(paths)} HTTP/1.1" '
                        f'{rng.choice((200, 200, 200, 404, 500))} {rng.randrange(9999)} "-" '
                        f'"Mozilla/5.0 (X11) bench/{i}"')
            elif kind == 1:
                line = orjson.dumps({"level": rng.choice((30, 30, 40, 50)), "time": 1796205600000 + i, "pid": 7,
                                     "hostname": "api-1", "reqId": i, "msg": f"order {i} processed"}).decode()
            else:
                line = (f"2026-12-02 10:00:00,{i % 1000:03d} {rng.choice(('INFO', 'WARNING', 'ERROR'))} "
                        f"worker.jobs: job {i} finished in {rng.randrange(999)} ms")
            out.write(line.encode() + b"\n")
    return path.stat().st_size


def rsyslog_conf(work: Path, kafka: str, topic: str, log: Path) -> Path:
    conf = work / "rsyslog.conf"
    conf.write_text(f"""
global(workDirectory="{work}" maxMessageSize="64k")
module(load="{RSYSLOG_MODULES}/imfile.so" mode="inotify")
module(load="{RSYSLOG_MODULES}/omkafka.so")
template(name="raw" type="string" string="%rawmsg%")
input(type="imfile" File="{log}" Tag="bench" ruleset="k" freshStartTail="off")
ruleset(name="k" queue.type="LinkedList" queue.size="200000" queue.dequeueBatchSize="5000") {{
  action(type="omkafka" broker=["{kafka}"] topic="{topic}" template="raw"
         confParam=["queue.buffering.max.ms=20", "batch.num.messages=10000", "compression.codec=zstd"]
         topicConfParam=["request.required.acks=-1"] action.resumeRetryCount="-1")
}}
""")
    return conf


def tail_env(kafka: str, topic: str, log: Path, work: Path, parsed: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAIL_")}
    spec = {"paths": [str(log)], "service": "bench", "format": "auto" if parsed else "raw",
            "multiline": {"mode": "default" if parsed else "off"}}
    env.update({"TAIL_KAFKA_BOOTSTRAP_SERVERS": kafka, "TAIL_TOPIC": topic,
                "TAIL_INPUTS": orjson.dumps([spec]).decode(), "TAIL_REGISTRY_PATH": str(work / "registry.json"),
                "COLLECTOR_LEVEL": "warning"})
    return env


async def topic_count(kafka: str, topic: str) -> int:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=kafka)
    await consumer.start()
    try:
        return sum((await consumer.end_offsets([TopicPartition(topic, 0)])).values())
    finally:
        await consumer.stop()


async def create_topic(kafka: str, topic: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()


@dataclass
class Result:
    name: str
    ok: bool = False
    seconds: float = 0.0
    cpu_s: float = 0.0
    rss_mb: float = 0.0
    count: int = 0
    note: str = ""


def run_one(name: str, kafka: str, log: Path, n: int, work: Path, timeout: float) -> Result:
    topic = f"bench-tail-{name}-{os.getpid()}-{int(time.time() * 1000)}"
    asyncio.run(create_topic(kafka, topic))
    work.mkdir(parents=True)
    res = Result(name)
    if name == "rsyslog":
        cmd = [RSYSLOG_BIN, "-n", "-f", str(rsyslog_conf(work, kafka, topic, log)), "-i", str(work / "pid")]
        env = None
    else:
        cmd = [sys.executable, "-m", "collector.cli", "tail"]
        env = tail_env(kafka, topic, log, work, parsed=name == "ours-parsed")
    out = open(work / "out.log", "wb")
    start = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        last, since = -1, time.monotonic()
        while True:
            time.sleep(0.25)
            count = asyncio.run(topic_count(kafka, topic))
            now = time.monotonic() - start
            if count >= n:
                res.ok, res.seconds, res.count = True, now, count
                res.cpu_s, res.rss_mb = proc_cpu_s(proc.pid), proc_hwm_mb(proc.pid)
                break
            if proc.poll() is not None:
                res.note = f"exited {proc.returncode}: {(work / 'out.log').read_text()[-300:]}"
                break
            if count != last:
                last, since = count, time.monotonic()
            elif time.monotonic() - since > 30 or now > timeout:
                res.note = f"stalled at {count}"
                res.count = count
                break
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out.close()
    return res


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", "-n", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", help="comma-separated: " + ",".join(CONTENDERS))
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--mix", default="mixed,nginx,pino",
                        help="comma-separated files to run: " + ",".join(MIXES))
    parser.add_argument("--markdown", help="also write the result table (markdown) to this file")
    args = parser.parse_args(argv)
    only = [c.strip() for c in (args.only or ",".join(CONTENDERS)).split(",") if c.strip()]
    env = stack_env()
    have_rsyslog = Path(RSYSLOG_BIN).exists() and (RSYSLOG_MODULES / "omkafka.so").exists()
    bench_dir = Path(tempfile.mkdtemp(prefix="bench-tail-"))
    runs: list[tuple[str, int, dict[str, list[Result]]]] = []
    ok = True
    try:
        for mix in [m.strip() for m in args.mix.split(",") if m.strip()]:
            log = bench_dir / f"{mix}.log"
            size = make_file(log, args.lines, mix)
            print(f"{mix}: {args.lines} lines, {size / 1e6:.1f} MB, broker {env.kafka}", flush=True)
            results: dict[str, list[Result]] = {}
            for rnd in range(args.rounds):
                order = only if rnd % 2 == 0 else list(reversed(only))
                for name in order:
                    if name == "rsyslog" and not have_rsyslog:
                        results[name] = [Result(name, note="rsyslog-kafka not installed (make test-deps)")]
                        continue
                    res = run_one(name, env.kafka, log, args.lines, bench_dir / f"{mix}-{name}-{rnd}", args.timeout)
                    print(f"round {rnd + 1} {mix} {name}: {res.seconds:.2f} s, {res.cpu_s:.2f} CPU-s, {res.count} "
                          f"{res.note}", flush=True)
                    results.setdefault(name, []).append(res)
            runs.append((mix, size, results))
            ok = ok and all(r.ok for rs in results.values() for r in rs if "not installed" not in r.note)
        table = render(runs, args.lines)
        print(table)
        if args.markdown:
            Path(args.markdown).write_text(table + "\n")
        return 0 if ok else 1
    finally:
        shutil.rmtree(bench_dir, ignore_errors=True)


def render(runs: list[tuple[str, int, dict[str, list[Result]]]], n: int) -> str:
    """One table for every file: per contender its fastest round (lines/s) and its lowest CPU over
    the rounds (the round least disturbed by other load), and the ratios within the file's run."""
    rows = ["| file | contender | lines/s | CPU-us a line | CPU-s of each round | peak RSS MB |",
            "| --- | --- | ---: | ---: | ---: | ---: |"]
    ratios = []
    for mix, size, results in runs:
        cpu: dict[str, float] = {}
        fast: dict[str, float] = {}
        for name in CONTENDERS:
            done = [r for r in results.get(name, []) if r.ok]
            if not done:
                if name in results:
                    rows.append(f"| {mix} | {LABEL[name]} | - | - | - | - | {results[name][0].note}")
                continue
            fastest = fast[name] = min(r.seconds for r in done)
            cpu[name] = min(r.cpu_s for r in done)
            rows.append(f"| {mix} ({size / n:.0f} B a line) | {LABEL[name]} | {n / fastest:,.0f} | "
                        f"{cpu[name] / n * 1e6:.2f} | {' / '.join(f'{r.cpu_s:.2f}' for r in done)} | "
                        f"{max(r.rss_mb for r in done):.0f} |")
        parts = []
        if "ours-raw" in cpu and "rsyslog" in cpu:
            parts.append(f"raw ours / rsyslog: CPU {cpu['ours-raw'] / cpu['rsyslog']:.2f}, "
                         f"throughput {fast['rsyslog'] / fast['ours-raw']:.2f}")
        if "ours-raw" in cpu and "ours-parsed" in cpu:
            parts.append(f"parsed / raw CPU {cpu['ours-parsed'] / cpu['ours-raw']:.2f} (goal <= 2)")
        if parts:
            ratios.append(f"- {mix}: " + "; ".join(parts))
    return "\n".join([*rows, "", *ratios])


if __name__ == "__main__":
    sys.exit(main())
