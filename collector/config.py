"""The logging library's settings: one pydantic-settings model, env prefix `COLLECTOR_`.

Every field can be passed to `collector.configure(...)` or set as `COLLECTOR_<FIELD>`, or come
from a JSON/TOML file named by `COLLECTOR_CONFIG_FILE` (arguments and env vars win). Secrets (the
ingest token) come from the environment or a file, never from code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from collector.contract.levels import normalize_level
from collector.contract.settings import FileSettings, check_pattern, kafka_bootstrap_field, one_source, read_secret
from collector.contract.streams import TOPIC_LOGS, TOPIC_METRICS

OUTPUTS = ("stdout", "kafka", "http", "memory")


def _split(value: object) -> object:
    # env vars carry lists as "a,b"; code may pass a list
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class CollectorSettings(FileSettings):
    model_config = SettingsConfigDict(env_prefix="COLLECTOR_", extra="forbid")

    service: str = Field("app", min_length=1, description="service.name of every record (e.g. api-service)")
    service_version: str = Field("0.0.0", description="service.version")
    environment: str = Field("development", description="service.environment")
    node_name: str = Field("", description="service.node.name (instance); defaults to the host name")
    level: Literal["debug", "info", "warning", "error", "critical"] = Field("info", description="minimum level")
    outputs: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["stdout"], description="comma-separated: stdout, kafka, http, memory"
    )
    capture_stdlib: bool = Field(True, description="route the stdlib `logging` root logger through the library")

    kafka_bootstrap_servers: str = kafka_bootstrap_field("COLLECTOR_", "Kafka output: bootstrap servers")
    kafka_topic_logs: str = Field(TOPIC_LOGS, description="Kafka output: topic for log records")
    kafka_topic_metrics: str = Field(TOPIC_METRICS, description="Kafka output: topic for metric documents")
    kafka_acks: Literal["0", "1", "all"] = Field(
        "all", description="Kafka output: producer acks; `all` also makes the producer idempotent (a resent "
        "batch is written once)")

    ingest_url: str = Field("", description="HTTP output: base URL of the ingest API (POST /v1/logs, /v1/metrics)")
    ingest_token: SecretStr | None = Field(None, description="HTTP output: bearer token")
    ingest_token_file: Path | None = Field(None, description="HTTP output: file holding the bearer token")
    ingest_timeout: float = Field(5.0, gt=0, description="HTTP output: request timeout, seconds")

    queue_size: int = Field(10_000, gt=0, description="per-output bounded queue length (records)")
    overflow: Literal["drop_newest", "drop_oldest"] = Field("drop_newest", description="what a full queue drops")
    batch_size: int = Field(500, gt=0, description="records per delivery batch")
    backoff_initial: float = Field(0.5, gt=0, description="reconnect backoff start, seconds")
    backoff_max: float = Field(30.0, gt=0, description="reconnect backoff cap, seconds")
    flush_timeout: float = Field(5.0, ge=0, description="deadline for flushing the queues at shutdown, seconds")

    redact: bool = Field(True, description="redact secrets (keys and values) before output")
    redact_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="extra key substrings to redact (comma-separated)"
    )
    redact_patterns: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="extra regexes whose matches are redacted (JSON list, or one pattern)"
    )

    metrics_interval: float = Field(10.0, ge=0, description="seconds between metric emissions; 0 disables")

    _split_lists = field_validator("outputs", "redact_keys", mode="before")(classmethod(lambda cls, v: _split(v)))

    @field_validator("level", mode="before")
    @classmethod
    def _level_alias(cls, value: object) -> object:
        # `WARN`, `Error`, `fatal`: any name the contract knows (an unknown one fails the Literal); a
        # number is left to fail too: the contract reads numbers as pino's, not the stdlib's
        return (normalize_level(value) or value) if isinstance(value, str) else value

    @field_validator("redact_patterns", mode="before")
    @classmethod
    def _patterns_list(cls, value: object) -> object:
        # regexes contain commas ({1,3}); the env var is a JSON list or one pattern
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    return json.loads(text)
                except ValueError:
                    raise ValueError("not a JSON list of regular expressions") from None
            return [text] if text else []
        return value

    @field_validator("outputs")
    @classmethod
    def _known_outputs(cls, value: list[str]) -> list[str]:
        names = [v.lower() for v in value]
        unknown = [n for n in names if n not in OUTPUTS]
        if unknown:
            raise ValueError(f"unknown output(s) {unknown}; choose from {list(OUTPUTS)}")
        return list(dict.fromkeys(names))

    @field_validator("redact_patterns")
    @classmethod
    def _compilable(cls, value: list[str]) -> list[str]:
        for pattern in value:
            check_pattern(pattern, "invalid regular expression")
        return value

    @model_validator(mode="after")
    def _outputs_configured(self) -> CollectorSettings:
        if "http" in self.outputs and not self.ingest_url:
            raise ValueError("ingest_url (COLLECTOR_INGEST_URL) is required when outputs include http")
        if self.backoff_max < self.backoff_initial:
            raise ValueError("backoff_max must be >= backoff_initial")
        one_source(self.ingest_token, self.ingest_token_file, "COLLECTOR_INGEST_TOKEN")
        return self

    def token(self) -> str | None:
        """The ingest token, re-read from its file each time so rotated Docker secrets are picked up."""
        try:
            return read_secret(self.ingest_token, self.ingest_token_file) or None
        except OSError:  # a secret being rotated: this batch goes without, the next one re-reads
            return None
