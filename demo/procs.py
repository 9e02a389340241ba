"""The demo's child processes: started with their own environment, logs to files, stopped by pid."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    logfile: Path


@dataclass
class Processes:
    logdir: Path
    children: list[Child] = field(default_factory=list)

    def start(self, name: str, args: list[str], env: dict[str, str]) -> Child:
        self.logdir.mkdir(parents=True, exist_ok=True)
        logfile = self.logdir / f"{name}.log"
        with open(logfile, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, *args], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, **env}, start_new_session=True,
            )
        child = Child(name, proc, logfile)
        self.children.append(child)
        return child

    def stop(self, child: Child, timeout: float = 20.0) -> int | None:
        if child.proc.poll() is None:
            child.proc.send_signal(signal.SIGTERM)
            try:
                child.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait()
        if child in self.children:
            self.children.remove(child)
        return child.proc.returncode

    def stop_all(self) -> None:
        for child in reversed(list(self.children)):
            self.stop(child)

    def check_alive(self) -> None:
        for child in self.children:
            if child.proc.poll() is not None:
                tail = child.logfile.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{child.name} exited with {child.proc.returncode}; its log ends:\n{tail}")


def wait_http(url: str, timeout: float = 30.0, child: Child | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child is not None and child.proc.poll() is not None:
            raise RuntimeError(f"{child.name} exited early; see {child.logfile}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError as exc:  # HTTPError (e.g. 503 while not ready) is an OSError too
            if getattr(exc, "code", None) is not None:
                return  # it answers; readiness is the caller's business
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")
