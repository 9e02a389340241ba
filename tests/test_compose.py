"""docker-compose.monitoring.yml is validated as `docker compose` would (compose-go and the
Compose Specification schema, via tools/composecheck), and matches the code's settings."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from stack.localstack import Config

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "docker-compose.monitoring.yml"
REQUIRED_SECRETS = {
    "ELASTIC_PASSWORD": "elastic-pw",
    "KIBANA_SYSTEM_PASSWORD": "kibana-pw",
    "SHIPPER_ES_PASSWORD": "shipper-pw",
    "KIBANA_ENCRYPTION_KEY": "k" * 32,
    "INGEST_TOKEN_API_SERVICE": "t1",
    "INGEST_TOKEN_AUTH_SERVICE": "t2",
    "INGEST_TOKEN_NGINX": "t3",
}
OUR_SERVICES = ("collector-ingest", "collector-probe", "collector-tail", "shipper", "kibana-setup")


@pytest.fixture(scope="module")
def composecheck() -> Path:
    go = shutil.which("go")
    if go is None:
        pytest.fail("Go is needed to build tools/composecheck (the compose-go validator)")
    binary = Config.from_env().cache / "bin" / "composecheck"
    binary.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([go, "build", "-o", str(binary), "."], cwd=REPO / "tools" / "composecheck", check=True)
    return binary


def _load(composecheck: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in REQUIRED_SECRETS}
    return subprocess.run([str(composecheck), str(COMPOSE)], env={**clean, **env},
                          capture_output=True, text=True, cwd=REPO)


@pytest.fixture(scope="module")
def project(composecheck: Path) -> dict[str, Any]:
    result = _load(composecheck, REQUIRED_SECRETS)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_file_is_valid_compose(project: dict[str, Any]) -> None:
    assert set(project["services"]) == {
        "elasticsearch", "elasticsearch-setup", "kibana", "kafka", "collector-ingest", "collector-otlp",
        "collector-probe", "collector-tail", "shipper", "kibana-setup",
    }
    # the application's own networks, so the prober and the ingest API reach its services
    assert set(project["networks"]) == {"frontend", "backend", "monitoring"}
    assert set(project["volumes"]) >= {"es_data", "kafka_data"}


def test_an_unset_password_is_refused_by_name(composecheck: Path) -> None:
    result = _load(composecheck, {})
    assert result.returncode != 0
    for name in ("ELASTIC_PASSWORD", "KIBANA_SYSTEM_PASSWORD", "SHIPPER_ES_PASSWORD", "KIBANA_ENCRYPTION_KEY"):
        assert name in result.stderr


def test_no_secret_is_written_into_the_file() -> None:
    text = COMPOSE.read_text()
    for value in REQUIRED_SECRETS.values():
        assert f": {value}\n" not in text
    assert "changeme" not in text.lower()


def test_services_are_operable(project: dict[str, Any]) -> None:
    services = project["services"]
    one_shots = {"elasticsearch-setup", "kibana-setup"}
    for name, service in services.items():
        assert service.get("deploy", {}).get("resources", {}).get("limits"), f"{name} has no resource limits"
        if name in one_shots:
            continue
        assert service.get("healthcheck") or name in ("collector-probe", "collector-tail"), f"{name} has no healthcheck"
        assert service.get("restart") == "unless-stopped", name
    shipper = services["shipper"]
    # --scale shipper=N needs replicas without fixed names or host ports, in one consumer group
    assert "container_name" not in shipper and not shipper.get("ports")
    assert shipper["environment"]["SHIPPER_GROUP_ID"]
    assert services["kibana-setup"]["depends_on"]["kibana"]["condition"] == "service_healthy"
    assert services["shipper"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    for name in ("kibana", "kafka", "elasticsearch"):
        for port in services[name].get("ports", []):
            assert port.get("host_ip") == "127.0.0.1", f"{name} publishes a port beyond loopback"


# compose service -> the one settings model its process reads
SETTINGS_OF = {
    "collector-ingest": "collector.ingest.config:IngestSettings",
    "collector-otlp": "collector.otlp.config:OtlpSettings",
    "collector-probe": "collector.probe.config:ProbeSettings",
    "collector-tail": "collector.tail.settings:TailSettings",
    "shipper": "shipper.config:ShipperSettings",
    "kibana-setup": "kibana.config:KibanaSettings",
}


def _env_vars(target: str) -> list[Any]:
    import importlib

    from collector.settings_reference import env_vars

    module, _, name = target.partition(":")
    return env_vars(getattr(importlib.import_module(module), name))


@pytest.mark.parametrize("service", sorted(SETTINGS_OF))
def test_every_variable_set_is_read_by_the_code(project: dict[str, Any], service: str) -> None:
    known = {var.name for var in _env_vars(SETTINGS_OF[service])}
    environment = project["services"][service].get("environment") or {}
    unknown = sorted(set(environment) - known)
    assert not unknown, f"{service} sets variables its settings model does not read: {unknown}"


@pytest.mark.parametrize("service", sorted(SETTINGS_OF))
def test_every_required_variable_is_set(project: dict[str, Any], service: str) -> None:
    environment = project["services"][service].get("environment") or {}
    required = {var.name for var in _env_vars(SETTINGS_OF[service]) if var.required}
    assert required <= set(environment), f"{service} misses {sorted(required - set(environment))}"


# ---- the Elasticsearch set-up job, run by bash against a stand-in curl

_FAKE_CURL = """#!/usr/bin/env bash
# records the URL and body of each call; fails the first $FAIL_FIRST calls (Elasticsearch still starting)
n=$(( $(cat "$LOG.count" 2>/dev/null || echo 0) + 1 )); echo "$n" > "$LOG.count"
url= body=
while [ $# -gt 0 ]; do case "$1" in -d) body=$2; shift 2;; -u|-H) shift 2;; -*) shift;; *) url=$1; shift;; esac; done
[ "$n" -le "${FAIL_FIRST:-0}" ] && exit 7
printf '%s\\n%s\\n' "$url" "$body" >> "$LOG"
"""


def _run_setup_job(project: dict[str, Any], tmp_path: Path, passwords: dict[str, str],
                   fail_first: int = 0) -> tuple[subprocess.CompletedProcess[str], list[tuple[str, Any]]]:
    service = project["services"]["elasticsearch-setup"]
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    (bindir / "curl").write_text(_FAKE_CURL)
    (bindir / "sleep").write_text("#!/bin/sh\nexit 0\n")  # the retry pause, without waiting
    for tool in ("curl", "sleep"):
        (bindir / tool).chmod(0o755)
    log = tmp_path / "calls"
    env = {"PATH": f"{bindir}:{os.environ['PATH']}", "LOG": str(log), "FAIL_FIRST": str(fail_first),
           **{k: v for k, v in service["environment"].items() if k not in passwords}, **passwords}
    result = subprocess.run([*service["entrypoint"], *service["command"]], env=env, capture_output=True,
                            text=True, timeout=60)
    lines = log.read_text().splitlines() if log.exists() else []
    calls = [(lines[i], json.loads(lines[i + 1])) for i in range(0, len(lines), 2)]
    return result, calls


@pytest.mark.parametrize("password", ['pa"ss', "back\\slash\\", 'both\\"end', "tab\there $HOME `x` 'q'"])
def test_setup_job_passes_any_password_as_valid_json(project: dict[str, Any], tmp_path: Path,
                                                     password: str) -> None:
    result, calls = _run_setup_job(project, tmp_path, {"KIBANA_SYSTEM_PASSWORD": password,
                                                      "SHIPPER_ES_PASSWORD": password + "2"})
    assert result.returncode == 0, result.stderr
    by_path = {url.split("9200", 1)[1]: body for url, body in calls}
    assert by_path["/_security/user/kibana_system/_password"] == {"password": password}
    assert by_path["/_security/user/elk_shipper"] == {"password": password + "2", "roles": ["elk_shipper"]}


def test_setup_job_retries_a_bounded_number_of_times(project: dict[str, Any], tmp_path: Path) -> None:
    result, calls = _run_setup_job(project, tmp_path, {}, fail_first=4)
    assert result.returncode == 0, result.stderr
    assert len(calls) == 3 and result.stderr.count("retrying") == 4
    again = tmp_path / "again"
    again.mkdir()
    result, calls = _run_setup_job(project, again, {}, fail_first=1000)
    assert result.returncode != 0 and "giving up" in result.stderr and calls == []
    assert result.stderr.count("retrying") == 30


def test_shipper_role_covers_what_ilm_does_as_the_policys_last_writer(project: dict[str, Any],
                                                                       tmp_path: Path) -> None:
    """The shipper writes the ILM policy at every start, so ILM's rollover and delete run with its role:
    manage_ilm and `manage` on the streams (Elasticsearch reference, create or update lifecycle policy)."""
    _, calls = _run_setup_job(project, tmp_path, {})
    role = next(body for url, body in calls if url.endswith("/_security/role/elk_shipper"))
    assert "manage_ilm" in role["cluster"] and "manage_index_templates" in role["cluster"]
    (indices,) = role["indices"]
    assert set(indices["names"]) == {"logs-*", "metrics-*"}
    assert {"manage", "create_doc", "auto_configure"} <= set(indices["privileges"])
    assert "all" not in indices["privileges"]


def test_kibana_keeps_its_data_across_recreation(project: dict[str, Any]) -> None:
    mounts = project["services"]["kibana"].get("volumes") or []
    assert any(m.get("type") == "volume" and m.get("target") == "/usr/share/kibana/data" for m in mounts)
    assert "kibana_data" in project["volumes"]
    es = project["services"]["elasticsearch"]["environment"]
    assert es["xpack.security.enabled"] == "true"  # security stays on
