"""The real programs write the logs: nginx, PostgreSQL and Redis from Debian (`make test-deps`),
pino and pino-http from npm (tests/tail/node), CPython. Each runs on loopback, briefly, and stops."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

NODE_DIR = Path(__file__).resolve().parent / "node"
PG_BIN = max(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), default=Path("/nonexistent"))

# docs/ingest.md's nginx JSON format
NGINX_JSON = (
    "log_format ecs_json escape=json '{\"@timestamp\":\"$time_iso8601\",\"http.request.method\":\"$request_method\","
    "\"url.original\":\"$request_uri\",\"url.path\":\"$uri\",\"http.response.status_code\":$status,"
    "\"http.response.body.bytes\":$body_bytes_sent,\"request_time\":\"$request_time\","
    "\"source.ip\":\"$remote_addr\",\"user_agent.original\":\"$http_user_agent\","
    "\"http.request.referrer\":\"$http_referer\",\"trace.id\":\"$request_id\"}';"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(path: Path, text: str, proc: subprocess.Popen[bytes], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited {proc.returncode}: {path.read_text(errors='replace')[-2000:]}")
        time.sleep(0.05)
    raise TimeoutError(f"{text!r} not in {path}")


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"User-Agent": "tail-test/1"}), timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def run_nginx(work: Path) -> tuple[Path, Path, Path]:
    """combined access log, the JSON access log, the error log; three requests: 200, 404, 404."""
    (work / "html").mkdir()
    (work / "html" / "index.html").write_text("hello\n")
    port = free_port()
    conf = work / "nginx.conf"
    conf.write_text(f"""
user root;
daemon off;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/error.log info;
events {{ worker_connections 64; }}
http {{
  {NGINX_JSON}
  client_body_temp_path {work}/tmp; proxy_temp_path {work}/tmp; fastcgi_temp_path {work}/tmp;
  uwsgi_temp_path {work}/tmp; scgi_temp_path {work}/tmp;
  access_log {work}/access.log combined;
  access_log {work}/access.json ecs_json;
  server {{ listen 127.0.0.1:{port}; root {work}/html; }}
}}
""")
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-e", str(work / "error.log")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)
    try:
        _wait_for(work / "error.log", "start worker process", proc)
        codes = [_get(f"http://127.0.0.1:{port}{path}") for path in ("/index.html?x=1", "/missing", "/nope.png")]
        assert codes == [200, 404, 404], codes
    finally:
        proc.send_signal(signal.SIGQUIT)  # graceful: the logs are complete
        proc.wait(30)
    return work / "access.log", work / "access.json", work / "error.log"


def run_postgres() -> Path:
    """PostgreSQL's stderr with the default prefix: startup, an ERROR with DETAIL and STATEMENT, a
    FATAL, shutdown. Runs as the `postgres` user (it refuses root) in a directory it owns."""
    work = Path(tempfile.mkdtemp(prefix="tail-pg-"))
    os.chmod(work, 0o755)
    shutil.chown(work, "postgres", "postgres")
    data, log = work / "data", work / "postgres.log"
    as_pg = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*as_pg, str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"],
                   check=True, capture_output=True, timeout=120)
    port = free_port()
    with open(log, "wb") as err:
        proc = subprocess.Popen([*as_pg, str(PG_BIN / "postgres"), "-D", str(data), "-p", str(port), "-k", str(work),
                                 "-c", "listen_addresses=", "-c", "log_line_prefix=%m [%p] ",
                                 "-c", "log_timezone=UTC"], stdout=subprocess.DEVNULL, stderr=err)
    try:
        _wait_for(log, "ready to accept connections", proc)
        psql = [*as_pg, "psql", "-h", str(work), "-p", str(port), "-U", "postgres", "-v", "ON_ERROR_STOP=0", "-q"]
        subprocess.run([*psql, "-c", "create table t (id int primary key); insert into t values (1);"
                        " insert into t values (1);"], capture_output=True, timeout=30)
        subprocess.run([*psql, "-d", "nope", "-c", "select 1"], capture_output=True, timeout=30)
    finally:
        pidfile = data / "postmaster.pid"  # runuser does not pass signals on: the postmaster itself
        if pidfile.exists():
            os.kill(int(pidfile.read_text().split()[0]), signal.SIGINT)  # fast shutdown
        proc.wait(30)
    return log


def run_redis(work: Path) -> Path:
    log = work / "redis.log"
    proc = subprocess.Popen(["redis-server", "--port", str(free_port()), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(work), "--logfile", str(log)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        _wait_for(log, "Ready to accept connections", proc)
    finally:
        proc.terminate()
        proc.wait(30)
    return log


def run_pino(work: Path) -> Path:
    log = work / "api.log"
    subprocess.run(["node", str(NODE_DIR / "app.js"), str(log)], check=True, cwd=NODE_DIR, timeout=60)
    return log


def run_python(work: Path) -> Path:
    """logging with a handled exception, then an uncaught one on stderr, both into one file."""
    log = work / "worker.log"
    code = ("import logging, sys\n"
            "logging.basicConfig(format='%(asctime)s %(levelname)s %(name)s: %(message)s', stream=sys.stderr)\n"
            "log = logging.getLogger('worker')\n"
            "log.warning('queue is slow')\n"
            "try:\n    {}['missing']\nexcept KeyError:\n    log.exception('job 7 failed')\n"
            "log.error('giving up')\n"
            "raise SystemExit(1)\n")
    with open(log, "wb") as err:
        subprocess.run([sys.executable, "-c", code], stderr=err, timeout=30)
    return log
