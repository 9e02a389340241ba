"""Prober settings (env prefix PROBE_); targets as `name=url,...` or from a JSON/TOML file."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from collector.contract.settings import kafka_bootstrap_field
from collector.contract.streams import TOPIC_HEALTH

_INSTANCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class ProbeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PROBE_")

    kafka_bootstrap_servers: str = kafka_bootstrap_field("PROBE_", "Kafka bootstrap servers.")
    topic: str = Field(TOPIC_HEALTH, description="Topic for probe results.")
    targets: str = Field("", description="Comma list of instance=url, e.g. api-service-1=http://h:3000/health.")
    targets_file: Path | None = Field(None, description="JSON or TOML file: {targets = {instance = url}}.")
    docker_socket: Path | None = Field(
        None, description="Docker socket (e.g. /var/run/docker.sock, mounted read-only): containers' own "
        "HEALTHCHECK results are published too, one per container and round.")
    interval_s: float = Field(2.0, gt=0, description="Seconds between probe rounds.")
    timeout_s: float = Field(1.5, gt=0, description="Per-target timeout; a hanging endpoint never delays the others.")
    confirm_interval_s: float = Field(
        0.25, ge=0, description="After a failed probe, or while a probe has been out this long (a hang), "
        "re-probe that target at this interval without waiting for the probes out (each still bounded by "
        "timeout_s) until it answers or has failed confirm_failures times in a row; 0: no confirmation probes.")
    confirm_failures: int = Field(
        3, ge=1, description="Failures in a row that confirm a target down (the shipper's "
        "SHIPPER_HEALTH__FAILURES_TO_DOWN); then the normal interval again. Also the most probes out at "
        "once per target.")

    @field_validator("targets")
    @classmethod
    def _targets_parse(cls, value: str) -> str:
        check_targets(parse_targets(value))
        return value

    @model_validator(mode="after")
    def _some_source(self) -> ProbeSettings:
        if not self.targets.strip() and self.targets_file is None and self.docker_socket is None:
            raise ValueError("nothing to probe: set PROBE_TARGETS, PROBE_TARGETS_FILE or PROBE_DOCKER_SOCKET")
        if self.targets_file is not None:
            self.target_map()  # a broken file fails at start, naming the file
        return self

    def target_map(self) -> dict[str, str]:
        out = dict(parse_targets(self.targets))
        if self.targets_file:
            try:
                raw = self.targets_file.read_bytes()
                data = tomllib.loads(raw.decode()) if self.targets_file.suffix == ".toml" else json.loads(raw)
            except (OSError, ValueError) as exc:
                raise ValueError(f"PROBE_TARGETS_FILE {self.targets_file}: {exc}") from exc
            table = data.get("targets", data) if isinstance(data, dict) else None
            if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
                raise ValueError(f"PROBE_TARGETS_FILE {self.targets_file}: expected {{targets = {{instance = url}}}}")
            pairs = [(str(k), v) for k, v in table.items()]
            check_targets(pairs)
            out.update(pairs)
        return out


def parse_targets(spec: str) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        name, sep, url = part.partition("=")
        if not sep:
            raise ValueError(f"target {part!r} is not instance=url")
        pairs.append((name.strip(), url.strip()))
    return pairs


def check_targets(pairs: list[tuple[str, str]]) -> None:
    for name, url in pairs:
        if not _INSTANCE.match(name):
            raise ValueError(f"target name {name!r}: letters, digits, '.', '_' and '-' only (it becomes the node name)")
        if not re.match(r"^https?://[^/\s]+", url):
            raise ValueError(f"target {name}: {url!r} is not an http:// or https:// URL")
