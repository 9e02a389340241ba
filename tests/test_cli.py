"""The console scripts fail at start, naming the setting, on invalid configuration."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize(("module", "command", "env", "says"), [
    ("collector.cli", "probe", {"PROBE_TARGETS": "api-service-1 http://x/health"},
     "collector probe: invalid configuration: PROBE_TARGETS"),
    ("collector.cli", "probe", {}, "collector probe: invalid configuration: nothing to probe"),
    ("collector.cli", "serve", {"INGEST_PORT": "abc"}, "collector serve: invalid configuration: INGEST_PORT"),
    ("collector.cli", "otlp", {"INGEST_OTLP_PORT": "abc"},
     "collector otlp: invalid configuration: INGEST_OTLP_PORT"),
    ("collector.cli", "tail", {}, "collector tail: invalid configuration: nothing to tail"),
    ("collector.cli", "tail", {"TAIL_INPUTS": '[{"paths": []}]'}, "collector tail: invalid configuration: TAIL_INPUTS"),
    ("shipper.cli", "run", {"SHIPPER_HTTP_PORT": "abc"}, "shipper: invalid configuration: SHIPPER_HTTP_PORT"),
])
def test_invalid_configuration_names_the_setting(module: str, command: str, env: dict[str, str], says: str) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PROBE_", "INGEST_", "SHIPPER_", "TAIL_"))}
    result = subprocess.run([sys.executable, "-m", module, command], env={**clean, **env},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert says in result.stderr
