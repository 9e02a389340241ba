"""Stdout output and shutdown in a real process: SIGTERM flushes within the deadline and still
kills the process; an app's own SIGTERM handler is left in charge (atexit flushes)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from tests.collector.conftest import assert_ecs

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import os, signal, sys
{pre}
import collector
collector.configure(service="api-service", metrics_interval=0)
log = collector.get_logger("app")
for i in range(2000):
    log.info("line", i=i)
os.kill(os.getpid(), signal.SIGTERM)
import time; time.sleep(5)
print("not reached", flush=True)
"""

OWN_HANDLER = """
def on_term(signum, frame):
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
"""


def _run(pre: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-c", SCRIPT.format(pre=pre)], capture_output=True, cwd=REPO,
                          timeout=60)


def test_sigterm_flushes_stdout_and_keeps_default_exit():
    proc = _run("")
    assert proc.returncode == -signal.SIGTERM
    lines = proc.stdout.splitlines()
    assert len(lines) == 2000
    assert [assert_ecs(line)["labels"]["i"] for line in lines] == list(range(2000))


def test_app_sigterm_handler_is_not_swallowed():
    proc = _run(OWN_HANDLER)
    assert proc.returncode == 0  # the app's handler ran (sys.exit(0)), then atexit flushed
    assert b"not reached" not in proc.stdout
    assert len(proc.stdout.splitlines()) == 2000
