"""Settings plumbing shared by every service's one settings model.

- secrets come from a variable or from a `*_FILE` variable naming a file (Docker secrets);
- an optional JSON/TOML config file (named by `<PREFIX>CONFIG_FILE`), env vars win over it;
- Kafka's address falls back to the shared `KAFKA_BOOTSTRAP_SERVERS`;
- a regular expression in a setting is compiled when the settings are read, not at first use;
- a validation error becomes one line that names the variable to fix.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

DEFAULT_KAFKA = "127.0.0.1:9092"


def read_secret(value: SecretStr | None, path: Path | None) -> str | None:
    """The secret from the variable, else from the file (surrounding white space dropped)."""
    if value is not None:
        return value.get_secret_value()
    if path is not None:
        return path.read_text().strip()
    return None


def one_source(value: object, path: object, name: str) -> None:
    """A secret given both ways is a mistake the operator should hear about."""
    if value is not None and path is not None:
        raise ValueError(f"set {name} or {name}_FILE, not both")


def check_pattern(pattern: str, what: str = "pattern") -> str:
    """The pattern itself when it compiles, else ValueError `<what> '<pattern>': <why>`."""
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{what} {pattern!r}: {exc}") from None
    return pattern


def kafka_bootstrap_field(prefix: str, description: str = "Kafka brokers, comma-separated host:port.") -> Any:
    """`<PREFIX>KAFKA_BOOTSTRAP_SERVERS`, else the shared `KAFKA_BOOTSTRAP_SERVERS`, else loopback."""
    return Field(
        DEFAULT_KAFKA,
        validation_alias=AliasChoices(f"{prefix}KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"),
        description=f"{description} (fallback: KAFKA_BOOTSTRAP_SERVERS)",
    )


def load_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A JSON or TOML file (by its ending) as a dict; a clear ValueError otherwise."""
    text = Path(path).read_bytes()
    try:
        data = tomllib.loads(text.decode()) if str(path).endswith(".toml") else json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"config file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"config file {path}: expected an object of settings")
    return data


class ConfigFileSource(PydanticBaseSettingsSource):
    """Values from the file named by `<env_prefix>CONFIG_FILE`; use after the env source."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        prefix = str(settings_cls.model_config.get("env_prefix") or "")
        path = os.environ.get(f"{prefix}CONFIG_FILE")
        self._data: dict[str, Any] = load_config_file(path) if path else {}

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._data.items() if k in self.settings_cls.model_fields}


def with_config_file(
    settings_cls: type[BaseSettings],
    init_settings: PydanticBaseSettingsSource,
    env_settings: PydanticBaseSettingsSource,
) -> tuple[PydanticBaseSettingsSource, ...]:
    """The source order for `settings_customise_sources`: arguments, env, then the config file."""
    return init_settings, env_settings, ConfigFileSource(settings_cls)


class FileSettings(BaseSettings):
    """A settings model that also reads `<env_prefix>CONFIG_FILE` (after the environment, which wins)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return with_config_file(settings_cls, init_settings, env_settings)


def describe_error(exc: ValidationError, prefix: str, nested_delimiter: str = "__") -> str:
    """`SHIPPER_TOPICS: at least one topic; SHIPPER_HEALTH__WEBHOOK_URL: ...` (no pydantic jargon)."""
    problems = []
    for error in exc.errors():
        where = nested_delimiter.join(str(p) for p in error["loc"]).upper()
        message = str(error["msg"]).removeprefix("Value error, ")
        if where and not where.startswith(prefix) and where != "KAFKA_BOOTSTRAP_SERVERS":
            where = prefix + where
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)
