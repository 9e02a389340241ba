"""The tailer's settings model: env prefix TAIL_, optional JSON/TOML file in TAIL_CONFIG_FILE."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from collector.contract.settings import FileSettings, check_pattern, kafka_bootstrap_field
from collector.contract.streams import TOPIC_LOGS

Format = Literal["auto", "raw", "ecs", "pino", "bunyan", "winston", "json", "nginx", "nginx_json", "nginx_error",
                 "postgres", "redis", "plain"]
_SERVICE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class Multiline(BaseModel):
    """How lines are joined into one record. `default` rules know Python, Java, Node and Go stack
    traces and PostgreSQL's DETAIL/HINT/STATEMENT lines; `start` and `continue_` are regexes."""

    mode: Literal["default", "pattern", "off"] = Field(
        "default", description="default: stack traces by the built-in rules; pattern: `start`/`continue`; off")
    start: str | None = Field(None, description="a line matching this starts a record (mode=pattern)")
    continue_: str | None = Field(None, alias="continue",
                                  description="a line matching this continues the record (mode=pattern)")
    max_lines: int = Field(500, ge=1, description="a longer record is cut (the rest starts a new one)")
    max_bytes: int = Field(64 * 1024, ge=256, description="a larger record is cut (the rest starts a new one)")
    timeout_s: float = Field(0.5, gt=0, description="a pending record is sent after this long without a new line")

    model_config = {"populate_by_name": True}

    @model_validator(mode="after")
    def _patterns(self) -> Multiline:
        if self.mode == "pattern" and not (self.start or self.continue_):
            raise ValueError("multiline mode=pattern needs `start` or `continue`")
        for pattern in (self.start, self.continue_):
            if pattern is not None:
                check_pattern(pattern, "multiline pattern")
        return self


class FileInput(BaseModel):
    """Files matched by glob patterns, re-scanned every `scan_interval_s`."""

    paths: list[str] = Field(min_length=1)
    exclude: list[str] = Field(default_factory=lambda: ["*.gz", "*.zip", "*.bz2", "*.xz"])
    service: str | None = Field(None, description="service.name for lines that name none; default: the file's "
                                "directory name (/var/log/nginx/access.log -> nginx)")
    format: Format = "auto"
    multiline: Multiline = Field(default_factory=Multiline)
    start_at: Literal["beginning", "end"] = Field(
        "beginning", description="where a file never seen before is read from")

    @field_validator("service")
    @classmethod
    def _service(cls, value: str | None) -> str | None:
        if value is not None and not _SERVICE.match(value):
            raise ValueError(f"service {value!r}: letters, digits, . _ - (at most 128)")
        return value


class TailSettings(FileSettings):
    model_config = SettingsConfigDict(env_prefix="TAIL_", env_nested_delimiter="__")

    kafka_bootstrap_servers: str = kafka_bootstrap_field("TAIL_")
    topic: str = Field(TOPIC_LOGS, description="Kafka topic for the records (the shipper's logs topic).")
    inputs: list[FileInput] = Field(
        default_factory=list, description="File inputs, a JSON list: "
        '[{"paths": ["/var/log/nginx/*.log"], "service": "nginx", "format": "auto"}].')
    docker_root: Path | None = Field(
        None, description="Docker's data root (e.g. /var/lib/docker, mounted read-only): every container's "
        "json-file log is tailed.")
    docker_format: Format = Field("auto", description="Parser for container output.")
    docker_multiline: Multiline = Field(default_factory=Multiline, description="Line joining for containers.")
    service_map: dict[str, str] = Field(
        default_factory=dict, description="Container name (or regex) -> service, for containers without the "
        "Compose service label; consulted before the instance rule (api-service-1 -> api-service).")
    docker_exclude: list[str] = Field(
        default_factory=list, description="Containers not to tail: regexes matched against the whole service "
        "or container name (e.g. the tailer itself).")
    registry_path: Path = Field(Path("/var/lib/elk-tail/registry.json"),
                                description="Where positions are kept (a volume: it must survive restarts).")
    registry_flush_s: float = Field(1.0, ge=0, description="Longest time acknowledged positions wait before the "
                                    "registry is written (fsynced); a crash re-sends at most this much.")
    scan_interval_s: float = Field(2.0, gt=0, description="Seconds between glob / container directory scans.")
    poll_interval_s: float = Field(0.1, gt=0, description="Sleep when no file had new data.")
    close_inactive_s: float = Field(5.0, gt=0, description="A deleted file is closed once read to its end and "
                                    "unchanged this long; while files wait for a descriptor, an open file this "
                                    "quiet gives its slot up (it is reopened at its position when it changes).")
    close_renamed_s: float = Field(60.0, gt=0, description="A renamed file is closed once read to its end and "
                                   "unchanged this long (its writer may take a while to reopen the new file).")
    max_open_files: int | None = Field(None, ge=1, description="Files held open at once (default 1024, and always "
                                       "64 below the process's descriptor limit); the others wait their turn.")
    max_inflight_bytes: int = Field(8 << 20, ge=64 << 10, description="Bytes sent but not yet acknowledged; "
                                    "reading pauses above it (the files are the buffer while Kafka is away).")
    max_line_bytes: int = Field(256 << 10, ge=1024, le=512 << 10,
                                description="A longer line is shipped in pieces of this size.")
    compression: Literal["none", "gzip", "lz4", "zstd", "snappy"] = Field(
        "zstd", description="Kafka batch compression (records of one file repeat their keys and path; "
        "zstd level 3 is 3x faster than aiokafka's lz4 level 9 and compresses better).")
    batch_linger_ms: int = Field(20, ge=0, description="Longest wait before a partial batch is sent.")
    request_timeout_s: float = Field(15.0, gt=0, description="Kafka delivery timeout; then the unacknowledged "
                                     "records are read again from the files.")
    host_name: str | None = Field(None, description="host.name of every record (default: this machine's name).")
    timezone: str | None = Field(None, description="IANA zone of times printed without one (Python's asctime, "
                                 "Redis, nginx's error log), e.g. Europe/Berlin; default: this host's zone.")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"timezone {value!r}: not an IANA zone name") from exc
        return value

    @field_validator("docker_exclude")
    @classmethod
    def _exclude(cls, value: list[str]) -> list[str]:
        for pattern in value:
            check_pattern(pattern)
        return value

    @field_validator("service_map")
    @classmethod
    def _map(cls, value: dict[str, str]) -> dict[str, str]:
        for pattern, service in value.items():
            if not _SERVICE.match(service):
                raise ValueError(f"service {service!r}: letters, digits, . _ - (at most 128)")
            check_pattern(pattern)
        return value

    @model_validator(mode="after")
    def _something(self) -> TailSettings:
        if not self.inputs and self.docker_root is None:
            raise ValueError("nothing to tail: set TAIL_INPUTS or TAIL_DOCKER_ROOT")
        return self
