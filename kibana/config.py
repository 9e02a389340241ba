"""The Kibana loader's one settings model: env vars KIBANA_..., validated at start."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from collector.contract.settings import one_source, read_secret


class KibanaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KIBANA_", extra="ignore")

    url: str = Field("http://127.0.0.1:5601", description="Kibana base URL (with its base path, if any).")
    username: str | None = Field(None, description="Basic-auth user (needs saved-object, connector and rule rights).")
    password: SecretStr | None = Field(None, description="Basic-auth password (prefer the _FILE variant).")
    password_file: Path | None = Field(None, description="File holding the password (Docker secret).")
    api_key: SecretStr | None = Field(None, description="Kibana/Elasticsearch API key (base64 id:key), sent as ApiKey.")
    api_key_file: Path | None = Field(None, description="File holding the API key.")
    space: str = Field("default", description="Kibana space to load into.")
    webhook_url: str | None = Field(
        None, description="When set, a webhook connector is created and every rule notifies it.")
    webhook_method: Literal["post", "put"] = Field("post", description="HTTP method of the webhook.")
    webhook_username: str | None = Field(None, description="Basic-auth user of the webhook, if it needs one.")
    webhook_password: SecretStr | None = Field(None, description="Basic-auth password of the webhook.")
    webhook_password_file: Path | None = Field(None, description="File holding the webhook password.")
    rules_enabled: bool = Field(True, description="Create the alert rules enabled (only applies on creation).")
    wait_timeout_s: float = Field(300.0, ge=0, description="How long to wait for Kibana to become available.")
    request_timeout_s: float = Field(60.0, gt=0, description="Timeout of one request to Kibana.")
    verify_tls: bool = Field(True, description="Verify Kibana's TLS certificate.")
    ca_file: Path | None = Field(None, description="CA bundle for Kibana's certificate.")
    objects_dir: Path | None = Field(None, description="Saved objects to load (default: the packaged kibana/objects).")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("KIBANA_URL must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("webhook_url", "username", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # Compose passes `${ALERT_WEBHOOK_URL:-}` as an empty string when it is not configured
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("space")
    @classmethod
    def _space(cls, value: str) -> str:
        value = value.strip() or "default"
        if not all(c.isalnum() or c in "-_" for c in value):
            raise ValueError("KIBANA_SPACE: letters, digits, - and _ only")
        return value.lower()

    @model_validator(mode="after")
    def _one_auth(self) -> KibanaSettings:
        one_source(self.password, self.password_file, "KIBANA_PASSWORD")
        one_source(self.api_key, self.api_key_file, "KIBANA_API_KEY")
        one_source(self.webhook_password, self.webhook_password_file, "KIBANA_WEBHOOK_PASSWORD")
        has_basic = self.username is not None or self.password is not None or self.password_file is not None
        if has_basic and (self.api_key or self.api_key_file):
            raise ValueError(
                "use a user name and password (KIBANA_USERNAME/PASSWORD) or an API key (KIBANA_API_KEY), not both")
        if (self.password or self.password_file) and not self.username:
            raise ValueError("KIBANA_PASSWORD needs KIBANA_USERNAME")
        return self

    def password_value(self) -> str | None:
        return read_secret(self.password, self.password_file)

    def api_key_value(self) -> str | None:
        return read_secret(self.api_key, self.api_key_file)

    def webhook_password_value(self) -> str | None:
        return read_secret(self.webhook_password, self.webhook_password_file)

    @property
    def space_prefix(self) -> str:
        return "" if self.space == "default" else f"/s/{self.space}"
