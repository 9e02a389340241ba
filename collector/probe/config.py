"""Prober settings (env prefix PROBE_); targets as `name=url,...` or from a JSON/TOML file."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from collector.schema import TOPIC_HEALTH


class ProbeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PROBE_")

    kafka_bootstrap_servers: str = Field(
        default_factory=lambda: os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        description="Kafka bootstrap servers (fallback: KAFKA_BOOTSTRAP_SERVERS).",
    )
    topic: str = Field(TOPIC_HEALTH, description="Topic for probe results.")
    targets: str = Field("", description="Comma list of instance=url, e.g. api-service-1=http://h:3000/health.")
    targets_file: Path | None = Field(None, description="JSON or TOML file: {targets = {instance = url}}.")
    interval_s: float = Field(2.0, gt=0, description="Seconds between probe rounds.")
    timeout_s: float = Field(1.5, gt=0, description="Per-target timeout; a hanging endpoint never delays the others.")

    def target_map(self) -> dict[str, str]:
        out = dict(parse_targets(self.targets))
        if self.targets_file:
            raw = self.targets_file.read_bytes()
            data = tomllib.loads(raw.decode()) if self.targets_file.suffix == ".toml" else json.loads(raw)
            out.update(data.get("targets", data))
        return out


def parse_targets(spec: str) -> list[tuple[str, str]]:
    pairs = [p.split("=", 1) for p in spec.split(",") if p.strip()]
    return [(name.strip(), url.strip()) for name, url in pairs]
