"""A real Apache Kafka broker, a real OpenSearch node and an Elasticsearch node as local processes,
without Docker.

The servers are assembled from Maven Central jars (the only place this machine can fetch
them from): `mvn dependency:copy-dependencies` fills a cache directory that is reused across
runs, tiny Java launchers start OpenSearch from the classpath and Elasticsearch from the module path
(only its server and transport-netty4 are served: what that node has and lacks is in
docs/ARCHITECTURE.md, "Elasticsearch in the local stack"), and Kafka runs its own
`kafka.Kafka` main in KRaft mode. Everything we start binds to 127.0.0.1, keeps its logs and
pid file in one state directory, and is stopped by pid.

    python -m stack up | down | status | restart kafka|opensearch|elasticsearch | stop ...

Settings (environment): STACK_DIR (state, default <repo>/.stack), STACK_CACHE (jars, default
~/.cache/elk-pipeline-stack), KAFKA_PORT (19092), KAFKA_CONTROLLER_PORT (19093),
SEARCH_PORT (19200), SEARCH_TRANSPORT_PORT (19300), ELASTICSEARCH_PORT (19210),
ELASTICSEARCH_TRANSPORT_PORT (19310), KAFKA_HEAP (512m), SEARCH_HEAP (1g), ELASTICSEARCH_HEAP (512m),
ELASTICSEARCH_VERSION (8.17.0; 9.x needs a JDK 21+, found under /usr/lib/jvm or ELASTICSEARCH_JAVA_HOME).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


@dataclass(frozen=True)
class Config:
    state: Path
    cache: Path
    kafka_port: int
    kafka_controller_port: int
    search_port: int
    search_transport_port: int
    kafka_heap: str
    search_heap: str
    es_port: int = 19210
    es_transport_port: int = 19310
    es_heap: str = "512m"

    @classmethod
    def from_env(cls) -> Config:
        return cls(
            state=Path(_env("STACK_DIR", str(REPO / ".stack"))).resolve(),
            cache=Path(_env("STACK_CACHE", str(Path.home() / ".cache" / "elk-pipeline-stack"))).resolve(),
            kafka_port=int(_env("KAFKA_PORT", "19092")),
            kafka_controller_port=int(_env("KAFKA_CONTROLLER_PORT", "19093")),
            search_port=int(_env("SEARCH_PORT", "19200")),
            search_transport_port=int(_env("SEARCH_TRANSPORT_PORT", "19300")),
            kafka_heap=_env("KAFKA_HEAP", "512m"),
            search_heap=_env("SEARCH_HEAP", "1g"),
            es_port=int(_env("ELASTICSEARCH_PORT", "19210")),
            es_transport_port=int(_env("ELASTICSEARCH_TRANSPORT_PORT", "19310")),
            es_heap=_env("ELASTICSEARCH_HEAP", "512m"),
        )

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def search_url(self) -> str:
        return f"http://127.0.0.1:{self.search_port}"

    @property
    def es_url(self) -> str:
        return f"http://127.0.0.1:{self.es_port}"


class StackError(RuntimeError):
    pass


def log(msg: str) -> None:
    print(f"[stack] {msg}", flush=True)


# ---------------------------------------------------------------- prerequisites and jars


def require_tools() -> None:
    missing = [tool for tool in ("java", "javac", "mvn") if shutil.which(tool) is None]
    if missing:
        raise StackError(
            f"missing {', '.join(missing)}: the local stack needs a JDK 17+ and Maven. "
            "Install them with: apt-get install -y openjdk-17-jdk-headless maven"
        )


def fetch_jars(cfg: Config, name: str, version: str | None = None) -> Path:
    """Copy the pom's dependencies into the cache once; a marker keyed by the pom's hash skips it later.
    `version` overrides the pom's `<name>.version` property (its jars get their own cache directory)."""
    pom = HERE / f"{name}-pom.xml"
    cached = f"{name}-{version}" if version else name
    lib = cfg.cache / cached / "lib"
    marker = cfg.cache / cached / ".fetched"
    digest = hashlib.sha256(pom.read_bytes() + (version or "").encode()).hexdigest()
    if marker.exists() and marker.read_text() == digest and any(lib.glob("*.jar")):
        return lib
    log(f"fetching {name} jars from Maven Central into {lib}")
    if lib.exists():
        shutil.rmtree(lib)
    lib.mkdir(parents=True)
    cmd = ["mvn", "-q", "-B", "-f", str(pom), "dependency:copy-dependencies", f"-DoutputDirectory={lib}"]
    if version:
        cmd.append(f"-D{name.split('-')[0]}.version={version}")
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise StackError(f"maven could not fetch the {name} jars:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    marker.write_text(digest)
    return lib


def compile_launcher(cfg: Config, lib: Path, name: str = "OpenSearchLauncher", out_dir: str = "launcher",
                     javac: str = "javac") -> Path:
    src = HERE / f"{name}.java"
    out = cfg.cache / out_dir
    marker = out / ".source"
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    if marker.exists() and marker.read_text() == digest:
        return out
    out.mkdir(parents=True, exist_ok=True)
    log(f"compiling {name}")
    result = subprocess.run(
        [javac, "-d", str(out), "-cp", f"{lib}/*", str(src)], capture_output=True, text=True
    )
    if result.returncode != 0:
        raise StackError(f"javac failed:\n{result.stderr}")
    marker.write_text(digest)
    return out


# ---------------------------------------------------------------- processes


def _pidfile(cfg: Config, name: str) -> Path:
    return cfg.state / name / f"{name}.pid"


def running_pid(cfg: Config, name: str) -> int | None:
    """The pid of our server `name`, if it is alive and really ours (its command line names our state dir)."""
    pidfile = _pidfile(cfg, name)
    try:
        pid = int(pidfile.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    if str(cfg.state).encode() not in cmdline:
        return None
    return pid


def _started_alive(cfg: Config, name: str) -> bool:
    """Liveness of a server we just spawned; right after fork its command line is not java's yet."""
    try:
        pid = int(_pidfile(cfg, name).read_text().strip())
    except (OSError, ValueError):
        return False
    return Path(f"/proc/{pid}").exists() and not _is_zombie(pid)


def _spawn(cfg: Config, name: str, cmd: list[str], env: dict[str, str] | None = None) -> int:
    logfile = cfg.state / name / f"{name}.log"
    with open(logfile, "ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cfg.state / name,
            env=env or os.environ.copy(),
            start_new_session=True,  # a Ctrl-C in the caller's terminal must not kill the servers
        )
    _pidfile(cfg, name).write_text(str(proc.pid))
    return proc.pid


def stop(cfg: Config, name: str, timeout: float = 60.0) -> None:
    pid = running_pid(cfg, name)
    if pid is None:
        _pidfile(cfg, name).unlink(missing_ok=True)
        return
    log(f"stopping {name} (pid {pid})")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists() or _is_zombie(pid):
            break
        time.sleep(0.2)
    else:
        log(f"{name} did not stop in {timeout:.0f}s; killing pid {pid}")
        os.kill(pid, signal.SIGKILL)
        while Path(f"/proc/{pid}").exists() and not _is_zombie(pid):
            time.sleep(0.1)
    _pidfile(cfg, name).unlink(missing_ok=True)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True


def _java() -> str:
    return shutil.which("java") or "java"


# ---------------------------------------------------------------- Kafka


def _kafka_properties(cfg: Config, data: Path) -> str:
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{cfg.kafka_controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{cfg.kafka_port},CONTROLLER://127.0.0.1:{cfg.kafka_controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{cfg.kafka_port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data),
        "num.partitions": "1",
        "auto.create.topics.enable": "true",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "8",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "message.max.bytes": "10485760",
        "log.retention.hours": "24",
    }
    return "".join(f"{k}={v}\n" for k, v in props.items())


def start_kafka(cfg: Config) -> None:
    if running_pid(cfg, "kafka") is not None:
        return
    lib = fetch_jars(cfg, "kafka")
    home = cfg.state / "kafka"
    data = home / "data"
    data.mkdir(parents=True, exist_ok=True)
    props = home / "server.properties"
    props.write_text(_kafka_properties(cfg, data))
    classpath = f"{lib}/*"
    log4j = f"-Dlog4j2.configurationFile=file:{HERE / 'log4j2-kafka.properties'}"
    if not (data / "meta.properties").exists():
        env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}  # StorageTool trips on COLUMNS
        base = [_java(), log4j, "-cp", classpath, "kafka.tools.StorageTool"]
        cluster_id = subprocess.run(
            [*base, "random-uuid"], capture_output=True, text=True, env=env, check=True
        ).stdout.strip().splitlines()[-1]
        result = subprocess.run(
            [*base, "format", "-t", cluster_id, "-c", str(props), "--ignore-formatted"],
            capture_output=True, text=True, env=env,
        )
        if result.returncode != 0:
            raise StackError(f"kafka storage format failed:\n{result.stdout}{result.stderr}")
    log(f"starting kafka on {cfg.bootstrap}")
    _spawn(cfg, "kafka", [
        _java(), f"-Xms{cfg.kafka_heap}", f"-Xmx{cfg.kafka_heap}", "-XX:+UseG1GC", log4j,
        f"-Dkafka.logs.dir={home}", "-Djava.awt.headless=true",
        "-cp", classpath, "kafka.Kafka", str(props),
    ])


def wait_kafka(cfg: Config, timeout: float = 90.0) -> None:
    """Ready means a real produce/consume round trip through a consumer group, not an open port."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if not _started_alive(cfg, "kafka"):
            raise StackError(f"kafka exited; see {cfg.state / 'kafka' / 'kafka.log'}")
        try:
            _kafka_round_trip(cfg.bootstrap, max(5.0, deadline - time.monotonic()))
            return
        except Exception as exc:  # the broker is still coming up
            last = exc
            time.sleep(1)
    raise StackError(f"kafka did not answer a round trip within {timeout:.0f}s: {last!r}")


def _kafka_round_trip(bootstrap: str, timeout: float) -> None:
    import asyncio
    import logging

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    # while the broker boots, aiokafka logs every refused attempt; the caller reports the outcome
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)

    async def run() -> None:
        token = os.urandom(8).hex().encode()
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        try:
            await producer.start()
            meta = await producer.send_and_wait("_stack_ready", token)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id="_stack_ready", enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        try:
            await consumer.start()
            from aiokafka import TopicPartition

            tp = TopicPartition("_stack_ready", meta.partition)
            consumer.assign([tp])
            consumer.seek(tp, meta.offset)
            batch = await consumer.getmany(tp, timeout_ms=5000)
            values = [m.value for m in batch.get(tp, [])]
            if token not in values:
                raise StackError("round trip message not read back")
        finally:
            await consumer.stop()

    asyncio.run(asyncio.wait_for(run(), timeout))


# ---------------------------------------------------------------- OpenSearch


def start_opensearch(cfg: Config) -> None:
    if running_pid(cfg, "opensearch") is not None:
        return
    lib = fetch_jars(cfg, "opensearch")
    launcher = compile_launcher(cfg, lib)
    home = cfg.state / "opensearch" / "home"
    for sub in ("modules", "plugins", "data", "logs", "config"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    log(f"starting opensearch on {cfg.search_url}")
    _spawn(cfg, "opensearch", [
        _java(), f"-Xms{cfg.search_heap}", f"-Xmx{cfg.search_heap}", "-XX:+UseG1GC",
        f"-Dlog4j2.configurationFile=file:{HERE / 'log4j2-opensearch.properties'}",
        "-Dlog4j2.disable.jmx=true", "-Djava.awt.headless=true", "-Dfile.encoding=UTF-8",
        "-Dio.netty.noUnsafe=true", "-Dio.netty.recycler.maxCapacityPerThread=0",
        "-cp", f"{launcher}:{lib}/*", "OpenSearchLauncher",
        str(home), str(cfg.search_port), str(cfg.search_transport_port),
    ])


def search_health(url: str, timeout: float = 5.0) -> dict | None:
    try:
        with urllib.request.urlopen(f"{url}/_cluster/health?wait_for_status=yellow&timeout=5s", timeout=timeout) as r:
            return json.loads(r.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def wait_engine(cfg: Config, name: str, url: str, timeout: float = 120.0) -> None:
    """Wait until the engine `name` (its process started by us) answers yellow or green at `url`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _started_alive(cfg, name):
            raise StackError(f"{name} exited; see {cfg.state / name / f'{name}.log'}")
        health = search_health(url)
        if health and health.get("status") in ("yellow", "green"):
            return
        time.sleep(0.5)
    raise StackError(f"{name} was not yellow/green within {timeout:.0f}s")


def wait_opensearch(cfg: Config) -> None:
    wait_engine(cfg, "opensearch", cfg.search_url)


# ---------------------------------------------------------------- Elasticsearch

_NETTY4_DESCRIPTOR = """description=Netty 4 based transport implementation
version={version}
name=transport-netty4
classname=org.elasticsearch.transport.netty4.Netty4Plugin
java.version=17
elasticsearch.version={version}
extended.plugins=
has.native.controller=false
"""


# 8.17 on the Java 17 the rest of the stack uses, by default. ELASTICSEARCH_VERSION=9.2.0 runs 9.x on a
# JDK 21+ (the Temurin 25 JDK on these machines is found by itself), but there logsdb indices fail on
# their first refresh: their stored fields need ES's native zstd, whose provider also needs the
# distribution's libvec, which is not served (docs/ARCHITECTURE.md).
ES_DEFAULT = "8.17.0"


def _java_major(home: Path) -> int:
    try:
        release = (home / "release").read_text()
    except OSError:
        return 0
    for line in release.splitlines():
        if line.startswith("JAVA_VERSION="):
            return int(line.split("=", 1)[1].strip('"').split(".")[0] or 0)
    return 0


def es_runtime() -> tuple[str, Path | None]:
    """(Elasticsearch version, JDK home or None for the `java` on PATH): ELASTICSEARCH_VERSION (8.17.0),
    run by ELASTICSEARCH_JAVA_HOME if set, else for 9.x by the newest JDK 21+ under /usr/lib/jvm."""
    version = os.environ.get("ELASTICSEARCH_VERSION") or ES_DEFAULT
    home = os.environ.get("ELASTICSEARCH_JAVA_HOME")
    if home or int(version.split(".")[0]) < 9:
        return version, Path(home) if home else None
    jdks = sorted(Path("/usr/lib/jvm").glob("*"), key=_java_major, reverse=True)
    jdk = next((j for j in jdks if _java_major(j) >= 21 and (j / "bin" / "javac").exists()), None)
    if jdk is None:
        raise StackError(f"Elasticsearch {version} needs a JDK 21+ (set ELASTICSEARCH_JAVA_HOME)")
    return version, jdk


def start_elasticsearch(cfg: Config) -> None:
    if running_pid(cfg, "elasticsearch") is not None:
        return
    version, jdk = es_runtime()
    java = str(jdk / "bin" / "java") if jdk else _java()
    lib = fetch_jars(cfg, "elasticsearch", version)
    netty = fetch_jars(cfg, "elasticsearch-netty4", version)
    launcher = compile_launcher(cfg, lib, "ElasticsearchLauncher", f"launcher-elasticsearch-{version}",
                                str(jdk / "bin" / "javac") if jdk else "javac")
    home = cfg.state / "elasticsearch" / "home"
    # a throw-away node: without the data stream APIs its streams cannot be deleted, so each start is empty
    shutil.rmtree(home, ignore_errors=True)
    module = home / "modules" / "transport-netty4"
    for sub in (module, home / "plugins", home / "data", home / "logs", home / "config"):
        sub.mkdir(parents=True, exist_ok=True)
    for jar in netty.glob("*.jar"):
        shutil.copy2(jar, module / jar.name)
    (module / "plugin-descriptor.properties").write_text(_NETTY4_DESCRIPTOR.format(version=version))
    log(f"starting elasticsearch {version} on {cfg.es_url}")
    _spawn(cfg, "elasticsearch", [
        java, f"-Xms{cfg.es_heap}", f"-Xmx{cfg.es_heap}", "-XX:+UseG1GC", f"-Des.path.home={home}",
        f"-Dlog4j2.configurationFile=file:{HERE / 'log4j2-elasticsearch.properties'}",
        "-Dlog4j2.disable.jmx=true", "-Djava.awt.headless=true", "-Dfile.encoding=UTF-8",
        "-Dio.netty.noUnsafe=true", "-Dio.netty.recycler.maxCapacityPerThread=0",
        "--module-path", str(lib), "--add-modules=ALL-MODULE-PATH", "-cp", str(launcher), "ElasticsearchLauncher",
        str(home), str(cfg.es_port), str(cfg.es_transport_port),
    ])


def wait_elasticsearch(cfg: Config) -> None:
    wait_engine(cfg, "elasticsearch", cfg.es_url)


# ---------------------------------------------------------------- commands

STARTERS = {"kafka": (start_kafka, wait_kafka), "opensearch": (start_opensearch, wait_opensearch),
            "elasticsearch": (start_elasticsearch, wait_elasticsearch)}
ALL = tuple(STARTERS)


def write_env(cfg: Config) -> Path:
    envfile = cfg.state / "env"
    text = f"KAFKA_BOOTSTRAP_SERVERS={cfg.bootstrap}\nSEARCH_URL={cfg.search_url}\n"
    if running_pid(cfg, "elasticsearch") is not None:
        text += f"ELASTICSEARCH_URL={cfg.es_url}\n"
    envfile.write_text(text)
    return envfile


def up(cfg: Config, names: tuple[str, ...] = ALL) -> None:
    require_tools()
    for name in names:
        (cfg.state / name).mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    # both JVMs boot concurrently; each wait checks the real protocol, not just the port
    for name in names:
        STARTERS[name][0](cfg)
    for name in names:
        STARTERS[name][1](cfg)
    envfile = write_env(cfg)
    log(f"up in {time.monotonic() - started:.1f}s; endpoints in {envfile}:")
    print(envfile.read_text(), end="", flush=True)


def down(cfg: Config, names: tuple[str, ...] = ALL) -> None:
    for name in names:
        stop(cfg, name)
    log("down")


def status(cfg: Config) -> int:
    ok = True
    for name in STARTERS:
        pid = running_pid(cfg, name)
        print(f"{name}: {'running, pid ' + str(pid) if pid else 'stopped'}")
        ok = ok and pid is not None
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down", "status", "start", "stop", "restart", "clean"])
    parser.add_argument("servers", nargs="*", choices=[[], *STARTERS], default=[])
    args = parser.parse_args(argv)
    cfg = Config.from_env()
    names = tuple(args.servers) or tuple(STARTERS)
    try:
        if args.command in ("up", "start"):
            up(cfg, names)
        elif args.command in ("down", "stop"):
            down(cfg, names)
        elif args.command == "restart":
            down(cfg, names)
            up(cfg, names)
        elif args.command == "clean":
            down(cfg)
            shutil.rmtree(cfg.state, ignore_errors=True)
            log(f"removed {cfg.state}")
        else:
            return status(cfg)
    except StackError as exc:
        print(f"[stack] error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
