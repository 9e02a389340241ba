"""The bare install is the logging library only: a fresh virtual environment with the project
installed without extras logs ECS to stdout and holds none of the services' packages; what needs
an extra says which."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

REPO = Path(__file__).resolve().parent.parent
# the distributions only a service needs (ingest API, prober, shipper)
SERVICE_PACKAGES = ("fastapi", "uvicorn", "starlette", "elasticsearch", "opensearch-py", "aiokafka", "httpx")

SCRIPT = """
import collector
collector.configure(service="x")
collector.get_logger("t").info("hi")
collector.shutdown()
"""


def _run(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("COLLECTOR_", "PYTHON", "VIRTUAL_ENV", "PIP_REQUIRE"))}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def bare_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the project installed from a copy of the tree (pip builds in the source
    tree; the worktree must not get build leftovers), no extras."""
    root = tmp_path_factory.mktemp("bare")
    src = root / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for package in ("collector", "shipper", "kibana"):
        shutil.copytree(REPO / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    venv = root / "venv"
    made = _run([sys.executable, "-m", "venv", str(venv)], root)
    assert made.returncode == 0, made.stderr
    pip = _run([str(venv / "bin" / "pip"), "install", "--disable-pip-version-check", "-q", str(src)], root)
    assert pip.returncode == 0, pip.stdout[-3000:] + pip.stderr[-3000:]
    return venv


def test_bare_install_logs_ecs_to_stdout(bare_venv: Path, tmp_path: Path) -> None:
    result = _run([str(bare_venv / "bin" / "python"), "-c", SCRIPT], tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    record = orjson.loads(lines[0])
    assert list(record)[:4] == ["@timestamp", "log.level", "message", "ecs.version"]
    assert (record["message"], record["log.level"], record["service"]["name"]) == ("hi", "info", "x")
    assert "site-packages" in _run([str(bare_venv / "bin" / "python"), "-c",
                                    "import collector; print(collector.__file__)"], tmp_path).stdout


def test_bare_install_has_no_service_packages(bare_venv: Path, tmp_path: Path) -> None:
    listed = _run([str(bare_venv / "bin" / "pip"), "list", "--format", "json", "--disable-pip-version-check"],
                  tmp_path, timeout=60)
    assert listed.returncode == 0, listed.stderr
    installed = {p["name"].lower().replace("_", "-") for p in orjson.loads(listed.stdout)}
    assert "elk-pipeline" in installed and {"pydantic", "pydantic-settings", "orjson"} <= installed
    assert installed.isdisjoint(SERVICE_PACKAGES), installed & set(SERVICE_PACKAGES)
    assert "structlog" not in installed  # the library does not import it


def test_a_missing_extra_is_named(bare_venv: Path, tmp_path: Path) -> None:
    kafka = _run([str(bare_venv / "bin" / "python"), "-c",
                  "import collector; collector.configure(service='x', outputs='kafka')"], tmp_path, timeout=60)
    assert kafka.returncode != 0
    assert "ImportError: the Kafka output (COLLECTOR_OUTPUTS=kafka) needs aiokafka: " \
           "pip install 'elk-pipeline[kafka]'" in kafka.stderr
    serve = _run([str(bare_venv / "bin" / "collector"), "serve"], tmp_path, timeout=60)
    assert serve.returncode == 2
    assert "elk-pipeline[ingest]" in serve.stderr and "Traceback" not in serve.stderr
    probe = _run([str(bare_venv / "bin" / "collector"), "probe"], tmp_path, timeout=60)
    assert probe.returncode == 2 and "elk-pipeline[probe]" in probe.stderr
