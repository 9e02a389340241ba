"""The ingest API's settings: one pydantic-settings model, env prefix `INGEST_`.

Tokens are never configured in plain text in the environment: `INGEST_TOKENS` maps a service
name to the SHA-256 hex digest of its token, and `INGEST_TOKENS_DIR` holds one file per service
(named after it, Docker-secrets style) containing the token itself. `INGEST_CONFIG_FILE` may name a
JSON or TOML file of settings (env vars win); Kafka falls back to `KAFKA_BOOTSTRAP_SERVERS`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from collector.contract.settings import FileSettings, kafka_bootstrap_field
from collector.contract.streams import TOPIC_HEALTH, TOPIC_LOGS, TOPIC_METRICS

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class IngestSettings(FileSettings):
    model_config = SettingsConfigDict(env_prefix="INGEST_", extra="ignore")

    host: str = Field("127.0.0.1", description="Address uvicorn binds to (0.0.0.0 in a container).")
    port: int = Field(8080, ge=0, le=65535, description="TCP port of the API.")
    kafka_bootstrap_servers: str = kafka_bootstrap_field("INGEST_")
    topic_logs: str = Field(TOPIC_LOGS, description="Topic for POST /v1/logs.")
    topic_metrics: str = Field(TOPIC_METRICS, description="Topic for POST /v1/metrics.")
    topic_health: str = Field(TOPIC_HEALTH, description="Topic for POST /v1/health.")
    kafka_timeout_s: float = Field(
        5.0, gt=0, description="Longest wait for Kafka's acknowledgement of a request's records before 503."
    )
    kafka_max_batch_bytes: int = Field(1 << 20, gt=0, description="Producer batch size (bytes per partition batch).")

    tokens: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description='JSON object service -> SHA-256 hex of its token, e.g. {"api-service": "9f86d0..."}.',
    )
    tokens_dir: Path | None = Field(
        None, description="Directory of files named after a service, each holding its token (Docker secrets)."
    )

    max_body_bytes: int = Field(
        10 << 20, gt=0, description="Largest request body, after gzip decompression; bigger is 413."
    )
    max_records: int = Field(10_000, gt=0, description="Most records in one request; more is 413.")
    max_record_bytes: int = Field(
        900_000, gt=0, description="Largest single record once shaped (Kafka's default limit is 1 MB); rejected."
    )
    max_in_flight_bytes: int = Field(
        64 << 20, gt=0,
        description="Bound on request bytes being processed or waiting for Kafka; beyond it requests get 503.",
    )
    limit_concurrency: int = Field(
        200, gt=0, description="uvicorn: most concurrent connections/requests before it answers 503."
    )
    retry_after_s: int = Field(5, ge=1, description="Retry-After seconds sent with 503.")
    redact: bool = Field(True, description="Redact secrets in records (the library's rules) before producing.")
    default_environment: str = Field(
        "", description="service.environment for records that carry none (empty: leave it out)."
    )
    access_log: bool = Field(False, description="uvicorn access log (paths and status codes only, never headers).")

    @field_validator("tokens", mode="before")
    @classmethod
    def _tokens_json(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if not text:
                return {}
            try:
                return json.loads(text)
            except ValueError:
                raise ValueError("INGEST_TOKENS must be a JSON object: service -> sha256 hex") from None
        return value

    @field_validator("tokens")
    @classmethod
    def _hashes(cls, value: dict[str, str]) -> dict[str, str]:
        out = {}
        for service, digest in value.items():
            digest = digest.strip().lower().removeprefix("sha256:")
            if not _HEX64.match(digest):
                # never echo the value: someone may have pasted the token itself
                raise ValueError(f"token hash for {service!r} is not 64 hex digits (a SHA-256 digest)")
            out[service] = digest
        return out

    @model_validator(mode="after")
    def _topics_differ(self) -> IngestSettings:
        if len({self.topic_logs, self.topic_metrics, self.topic_health}) != 3:
            raise ValueError("topic_logs, topic_metrics and topic_health must be three different topics")
        return self
