"""The `collector` package loads its names on first use (PEP 562): the documented set-up works as it
did when everything was imported eagerly, and a process that only needs the contract or one output
does not load the settings model. Each case runs in a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run(code: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")}
    result = subprocess.run([sys.executable, "-c", code], env=clean, cwd=REPO, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def loaded_after(code: str) -> set[str]:
    return set(run(code + "\nimport sys\nprint('\\n'.join(sorted(sys.modules)))").split())


@pytest.mark.parametrize("code", ["import collector", "import collector.contract.streams",
                                  "from collector.record import build"])
def test_importing_the_package_or_the_contract_loads_no_settings_model(code: str) -> None:
    modules = loaded_after(code)
    for heavy in ("pydantic", "pydantic_settings", "collector.config", "collector.lifecycle", "collector.middleware",
                  "collector.health", "collector.bridge"):
        assert heavy not in modules, f"{code!r} loaded {heavy}"


def test_every_public_name_is_the_object_its_module_defines() -> None:
    out = run("""
import importlib
import collector
homes = {"uvicorn_log_config": "bridge", "add_health": "health", "Logger": "logger", "get_logger": "logger",
         "REGISTRY": "metrics", "LoggingMiddleware": "middleware", "ConfigError": "state"}
homes.update(dict.fromkeys(["bind_context", "bind_fields", "current_context", "parse_traceparent",
                            "request_context", "reset_context", "reset_fields"], "context"))
homes.update(dict.fromkeys(["configure", "emit_metrics", "flush", "outputs", "shutdown", "stats"], "lifecycle"))
registry = importlib.import_module("collector.metrics").REGISTRY
for name in collector.__all__:
    if name in ("counter", "gauge", "histogram"):
        assert getattr(collector, name) == getattr(registry, name), name
    else:
        assert getattr(collector, name) is getattr(importlib.import_module("collector." + homes[name]), name), name
assert sorted([*homes, "counter", "gauge", "histogram"]) == sorted(collector.__all__)
assert set(collector.__all__) <= set(dir(collector))
print("ok")
""")
    assert out.split() == ["ok"]


def test_the_documented_two_lines_and_attributes_work_after_a_bare_import() -> None:
    out = run("""
import collector
collector.configure(service="api-service", environment="test", outputs="memory", metrics_interval=0)
log = collector.get_logger("tests")
log.info("user logged in", user_id=42)
collector.counter("logins").inc()
assert b"user logged in" in collector.outputs()["memory"].records[0]
# README: the helpers for web services are reached as attributes of the package's modules
assert callable(collector.health.add_health) and collector.middleware.LoggingMiddleware
assert collector.config.CollectorSettings.model_fields
collector.shutdown()
print("ok")
""")
    assert out.split() == ["ok"]


@pytest.mark.parametrize("first", ["import collector.outputs.stdout", "from collector.outputs.base import Output",
                                   "import collector.lifecycle", "pass"])
def test_outputs_is_the_function_whichever_module_loads_first(first: str) -> None:
    """`collector.outputs` names the function and the subpackage collector/outputs/: loading the
    subpackage must not replace the function."""
    out = run(f"""
{first}
import collector
import collector.outputs.stdout
from collector.lifecycle import outputs
assert collector.outputs is outputs, collector.outputs
print("ok")
""")
    assert out.split() == ["ok"]


def test_star_import_submodule_import_and_unknown_names() -> None:
    out = run("""
from collector import *  # noqa: F403
from collector import kafka_link
import collector
assert callable(configure) and callable(get_logger) and kafka_link.__name__ == "collector.kafka_link"  # noqa: F405
for missing in ("no_such_name", "__wrapped__"):
    try:
        getattr(collector, missing)
    except AttributeError:
        pass
    else:
        raise AssertionError(missing)
print("ok")
""")
    assert out.split() == ["ok"]
