"""The library's and the ingest API's settings use the contract's plumbing: level aliases, the shared
Kafka fallback, a config file under the env vars, one source per secret, errors naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

import collector
from collector.config import CollectorSettings
from collector.ingest.config import IngestSettings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "COLLECTOR_KAFKA_BOOTSTRAP_SERVERS", "INGEST_KAFKA_BOOTSTRAP_SERVERS",
                 "COLLECTOR_CONFIG_FILE", "INGEST_CONFIG_FILE", "COLLECTOR_LEVEL"):
        monkeypatch.delenv(name, raising=False)


def test_level_aliases_from_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLLECTOR_LEVEL", "WARN")
    assert CollectorSettings().level == "warning"
    assert CollectorSettings(level="Fatal").level == "critical"
    with pytest.raises(collector.ConfigError, match="COLLECTOR_LEVEL: "):
        collector.configure(level="loud")
    with pytest.raises(collector.ConfigError, match="COLLECTOR_LEVEL: "):
        collector.configure(level=30)  # not pino's 30 (info) read as a minimum level


def test_kafka_falls_back_to_the_shared_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker:9092")
    assert CollectorSettings().kafka_bootstrap_servers == "broker:9092"
    assert IngestSettings().kafka_bootstrap_servers == "broker:9092"
    monkeypatch.setenv("COLLECTOR_KAFKA_BOOTSTRAP_SERVERS", "own:9092")
    assert CollectorSettings().kafka_bootstrap_servers == "own:9092"


def test_config_file_under_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    toml = tmp_path / "collector.toml"
    toml.write_text('service = "from-file"\nenvironment = "staging"\n')
    monkeypatch.setenv("COLLECTOR_CONFIG_FILE", str(toml))
    monkeypatch.setenv("COLLECTOR_ENVIRONMENT", "production")
    settings = CollectorSettings()
    assert (settings.service, settings.environment) == ("from-file", "production")
    toml.write_text("service = ")
    with pytest.raises(collector.ConfigError, match=r"config file .*collector\.toml"):
        collector.configure()
    ingest = tmp_path / "ingest.json"
    ingest.write_text('{"port": 9999, "topic_logs": "file-logs"}')
    monkeypatch.setenv("INGEST_CONFIG_FILE", str(ingest))
    assert (IngestSettings().port, IngestSettings().topic_logs) == (9999, "file-logs")


def test_ingest_token_from_one_source_reread_from_its_file(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("first\n")
    settings = CollectorSettings(ingest_token_file=secret)
    assert settings.token() == "first"
    secret.write_text("rotated")
    assert settings.token() == "rotated"
    secret.unlink()
    assert settings.token() is None
    assert CollectorSettings(ingest_token="plain").token() == "plain"
    with pytest.raises(collector.ConfigError, match="COLLECTOR_INGEST_TOKEN or COLLECTOR_INGEST_TOKEN_FILE"):
        collector.configure(ingest_token="a", ingest_token_file=secret)
