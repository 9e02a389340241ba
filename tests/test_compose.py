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
