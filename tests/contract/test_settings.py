"""The settings helpers: secrets, config files, Kafka fallback, error lines."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import SettingsConfigDict

from collector.contract.settings import (
    FileSettings,
    check_pattern,
    describe_error,
    kafka_bootstrap_field,
    load_config_file,
    read_secret,
)


class Demo(FileSettings):
    model_config = SettingsConfigDict(env_prefix="DEMO_", env_nested_delimiter="__", extra="ignore")
    kafka_bootstrap_servers: str = kafka_bootstrap_field("DEMO_")
    topics: str = Field("a")
    port: int = Field(1)

    @field_validator("topics")
    @classmethod
    def _topics(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("at least one topic")
        return value


def test_secret_from_value_or_file(tmp_path: Path) -> None:
    secret = tmp_path / "s"
    secret.write_text("  hunter2\n")
    assert read_secret(SecretStr("x"), None) == "x"
    assert read_secret(None, secret) == "hunter2"
    assert read_secret(None, None) is None


@pytest.mark.parametrize(("env", "expected"), [
    ({}, "127.0.0.1:9092"),
    ({"KAFKA_BOOTSTRAP_SERVERS": "k:1"}, "k:1"),
    ({"KAFKA_BOOTSTRAP_SERVERS": "k:1", "DEMO_KAFKA_BOOTSTRAP_SERVERS": "own:2"}, "own:2"),
])
def test_kafka_fallback(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str) -> None:
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "DEMO_KAFKA_BOOTSTRAP_SERVERS", "DEMO_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert Demo().kafka_bootstrap_servers == expected


@pytest.mark.parametrize(("suffix", "text"), [
    (".json", '{"topics": "t", "port": 5}'), (".toml", 'topics = "t"\nport = 5\n')])
def test_config_file_and_env_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str, text: str) -> None:
    path = tmp_path / f"c{suffix}"
    path.write_text(text)
    monkeypatch.setenv("DEMO_CONFIG_FILE", str(path))
    monkeypatch.setenv("DEMO_PORT", "7")
    settings = Demo()
    assert (settings.topics, settings.port) == ("t", 7)


def test_bad_config_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text("[1]")
    with pytest.raises(ValueError, match=r"c\.json: expected an object"):
        load_config_file(path)
    path.write_text("{nope")
    with pytest.raises(ValueError, match=r"c\.json"):
        load_config_file(path)


def test_error_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEMO_CONFIG_FILE", raising=False)
    monkeypatch.setenv("DEMO_TOPICS", " ")
    monkeypatch.setenv("DEMO_PORT", "x")
    with pytest.raises(ValidationError) as caught:
        Demo()
    line = describe_error(caught.value, "DEMO_")
    assert "DEMO_TOPICS: at least one topic" in line and "DEMO_PORT: " in line and "Value error" not in line


@pytest.mark.parametrize(("pattern", "what", "error"), [
    (r"^\s+at ", "pattern", None),
    ("api-.*", "multiline pattern", None),
    ("(unclosed", "pattern", "pattern '(unclosed': missing ), unterminated subpattern at position 0"),
    ("[z-a]", "invalid regular expression",
     "invalid regular expression '[z-a]': bad character range z-a at position 1"),
])
def test_check_pattern(pattern: str, what: str, error: str | None) -> None:
    if error is None:
        assert check_pattern(pattern, what) == pattern
    else:
        with pytest.raises(ValueError) as caught:
            check_pattern(pattern, what)
        assert str(caught.value) == error
