"""Settings: env names of the contract, the config file, clear errors, and --help listing them all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from shipper.cli import main
from shipper.config import ShipperSettings
from shipper.engines.detect import kind_from


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("SHIPPER_") or name in ("KAFKA_BOOTSTRAP_SERVERS", "SEARCH_URL"):
            monkeypatch.delenv(name)


def test_defaults_fallbacks_and_nested(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k:1")
    monkeypatch.setenv("SEARCH_URL", "http://s:2")
    monkeypatch.setenv("SHIPPER_SERVICE_MAP", '{"api-.*": "api"}')
    monkeypatch.setenv("SHIPPER_HEALTH__ENABLED", "false")
    settings = ShipperSettings()
    assert (settings.kafka_bootstrap_servers, settings.search_url) == ("k:1", "http://s:2")
    assert settings.topic_list == ["elk-logs", "elk-metrics", "elk-health"]
    assert (settings.group_id, settings.dead_letter_topic, settings.http_port) == ("elk-shipper", "elk-dead-letter",
                                                                                   9108)
    assert settings.service_map == {"api-.*": "api"}
    assert settings.health.enabled is False
    monkeypatch.setenv("SHIPPER_KAFKA_BOOTSTRAP_SERVERS", "k:9")
    assert ShipperSettings().kafka_bootstrap_servers == "k:9"


def test_config_file_and_env_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "shipper.json"
    path.write_text(json.dumps({"namespace": "fromfile", "batch_max_records": 123}))
    monkeypatch.setenv("SHIPPER_CONFIG_FILE", str(path))
    monkeypatch.setenv("SHIPPER_BATCH_MAX_RECORDS", "456")
    settings = ShipperSettings()
    assert (settings.namespace, settings.batch_max_records) == ("fromfile", 456)
    toml = tmp_path / "shipper.toml"
    toml.write_text('namespace = "t"\ngzip = true\n')
    monkeypatch.setenv("SHIPPER_CONFIG_FILE", str(toml))
    assert ShipperSettings().gzip is True


def test_secrets_from_files_and_one_source_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    monkeypatch.setenv("SHIPPER_SEARCH_PASSWORD_FILE", str(secret))
    assert ShipperSettings().password == "s3cret"
    assert "s3cret" not in repr(ShipperSettings())
    monkeypatch.setenv("SHIPPER_SEARCH_PASSWORD", "other")
    with pytest.raises(ValidationError):
        ShipperSettings()


def test_invalid_values_exit_with_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPPER_BATCH_MAX_RECORDS", "zero")
    with pytest.raises(SystemExit) as caught:
        main(["setup"])
    assert "SHIPPER_BATCH_MAX_RECORDS" in str(caught.value)


def test_help_lists_every_setting(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    for name in ShipperSettings.model_fields:
        if name != "health":
            assert f"SHIPPER_{name.upper()}" in text, name
    assert "SHIPPER_HEALTH__ENABLED" in text


def test_engine_detection_from_get_root() -> None:
    assert kind_from({}, {"version": {"distribution": "opensearch", "number": "2.19.1"}}) == "opensearch"
    assert kind_from({"X-Elastic-Product": "Elasticsearch"}, {"version": {"number": "8.15.3"}}) == "elasticsearch"
    assert kind_from({}, {"version": {"number": "9.0.0", "build_flavor": "default"}}) == "elasticsearch"
    assert kind_from({}, {"version": {"number": "1"}}) is None


def test_topic_roles_are_settings_and_one_topic_has_one_role(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPPER_METRICS_TOPICS", "m1, m2")
    monkeypatch.setenv("SHIPPER_HEALTH_TOPICS", "probes")
    roles = ShipperSettings().roles
    assert (roles.metrics, roles.health) == (frozenset({"m1", "m2"}), frozenset({"probes"}))
    monkeypatch.setenv("SHIPPER_HEALTH_TOPICS", "probes,m2")
    with pytest.raises(SystemExit) as caught:
        main(["setup"])
    assert "SHIPPER_METRICS_TOPICS and SHIPPER_HEALTH_TOPICS" in str(caught.value)
    assert "Value error" not in str(caught.value)
