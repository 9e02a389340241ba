"""`make demo` keeps working: a short run against the local stack delivers and prints its summary."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_demo_delivers_and_prints_the_summary(kafka_bootstrap: str, search_url: str) -> None:
    result = subprocess.run([sys.executable, "-m", "demo", "--seconds", "40"], cwd=REPO, env=os.environ.copy(),
                            capture_output=True, text=True, timeout=420)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    out = result.stdout
    assert "elk-pipeline demo: summary" in out and "done: the pipeline delivered" in out
    for service in ("api-service", "auth-service", "nginx"):
        assert f"  {service} " in out
    assert "healthy -> unhealthy" in out and "unhealthy -> healthy" in out
    assert "fired" in out and "resolved" in out  # the outage's alert, and its resolution
    assert "End-to-end latency" in out
