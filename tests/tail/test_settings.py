"""The tailer's settings: env vars, the optional config file (env wins), errors naming the setting."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from collector.contract.settings import describe_error
from collector.tail.settings import TailSettings


def test_env_and_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "tail.toml"
    config.write_text("""
topic = "from-file"
docker_root = "/var/lib/docker"
[[inputs]]
paths = ["/var/log/nginx/access.log", "/var/log/nginx/error.log"]
service = "nginx"
format = "auto"
[inputs.multiline]
mode = "pattern"
start = '^\\d{4}/'
""")
    monkeypatch.setenv("TAIL_CONFIG_FILE", str(config))
    monkeypatch.setenv("TAIL_TOPIC", "from-env")
    monkeypatch.setenv("TAIL_SERVICE_MAP", '{"legacy_.*": "legacy"}')
    monkeypatch.setenv("TAIL_DOCKER_MULTILINE__MAX_LINES", "50")
    settings = TailSettings()
    assert settings.topic == "from-env"  # env wins over the file
    assert settings.docker_root == Path("/var/lib/docker")
    assert settings.inputs[0].service == "nginx" and settings.inputs[0].multiline.start == r"^\d{4}/"
    assert settings.service_map == {"legacy_.*": "legacy"} and settings.docker_multiline.max_lines == 50


@pytest.mark.parametrize(("env", "says"), [
    ({}, "nothing to tail"),
    ({"TAIL_INPUTS": '[{"paths": ["/x"], "service": "no spaces"}]'}, "TAIL_INPUTS__0__SERVICE"),
    ({"TAIL_INPUTS": '[{"paths": ["/x"], "multiline": {"mode": "pattern"}}]'}, "needs `start` or `continue`"),
    ({"TAIL_INPUTS": '[{"paths": ["/x"], "multiline": {"mode": "pattern", "start": "("}}]'}, "multiline pattern"),
    ({"TAIL_DOCKER_ROOT": "/d", "TAIL_SERVICE_MAP": '{"(": "x"}'}, "TAIL_SERVICE_MAP"),
    ({"TAIL_DOCKER_ROOT": "/d", "TAIL_MAX_INFLIGHT_BYTES": "10"}, "TAIL_MAX_INFLIGHT_BYTES"),
])
def test_errors_name_the_setting(env: dict[str, str], says: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError) as err:
        TailSettings()
    assert says in describe_error(err.value, "TAIL_")
