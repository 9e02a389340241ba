"""Health and alerting settings, nested in the shipper's settings as SHIPPER_HEALTH__*.

Rule thresholds have defaults (SHIPPER_HEALTH__SILENCE_S, ...) and can be overridden per service with
SHIPPER_HEALTH__SERVICES, a JSON object: `{"api-service": {"silence_s": 30, "error_rate": false}}`.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

SHIPPER_SERVICE = "elk-shipper"  # the service name pipeline-scoped alerts (dead letters, lag) carry


class RuleSettings(BaseModel):
    unhealthy: bool = Field(True, description="Alert when a service is unhealthy (all instances down).")
    unhealthy_for_s: float = Field(0.0, ge=0, description="... for at least this long (after the probe hysteresis).")
    error_rate: bool = Field(True, description="Alert on an error-rate spike (error/critical records).")
    error_window_s: float = Field(60.0, gt=0, description="Error-rate window (by event time).")
    error_baseline_windows: int = Field(10, ge=1, description="Windows before the current one that form the baseline.")
    error_rate_factor: float = Field(3.0, ge=1, description="Spike: errors in the window >= factor x baseline mean.")
    error_min_count: int = Field(10, ge=1, description="... and at least this many errors in the window.")
    error_ratio: bool = Field(True, description="Alert when errors are too large a share of the service's records.")
    error_ratio_max: float = Field(
        0.2, gt=0, le=1, description="Errors (error/critical records or HTTP 5xx) over this share of the records "
        "in error_window_s fire the error-ratio rule.")
    error_ratio_min_records: int = Field(50, ge=1, description="... when the window holds at least this many records.")
    error_ratio_resolve: float = Field(
        0.1, ge=0, le=1, description="An open error-ratio alert resolves only once the share is at or below this "
        "(under error_ratio_max: no fire-resolve-fire around one threshold).")
    silence: bool = Field(True, description="Alert when a service stops logging (only while the shipper is caught up).")
    silence_s: float = Field(120.0, gt=0, description="No records for longer than this is silence.")
    dead_letter: bool = Field(True, description="Alert when dead letters grow.")
    dead_letter_window_s: float = Field(300.0, gt=0, description="Dead-letter growth window.")
    dead_letter_min: int = Field(10, ge=1, description="Dead letters within the window that raise the alert.")
    consumer_lag: bool = Field(True, description="Alert when the shipper's consumer lag stays over the limit.")
    lag_max: int = Field(100_000, ge=0, description="Consumer lag (records, all partitions) limit.")
    lag_for_s: float = Field(60.0, ge=0, description="... exceeded for at least this long.")
    silence_forget_s: float = Field(
        86400.0, gt=0, description="A service silent this long is forgotten: its silence alert ends (no data since "
        "its last record) and nothing fires for it again until it logs again (one-off jobs).")
    no_data_windows: int = Field(
        3, ge=1, description="An open alert whose rule cannot tell (no traffic, no probe results) for this many of "
        "its windows ends with resolution no_data (unhealthy: after forget_after_s).")
    tracking_cap: bool = Field(True, description="Alert when services or instances beyond the tracking caps "
                               "(max_services, max_instances) are refused.")
    stream_cap: bool = Field(True, description="Alert while records of new datasets go to the catch-all stream "
                             "because SHIPPER_MAX_STREAMS is reached.")
    renotify_s: float = Field(3600.0, ge=0, description="Re-notify an open alert this often (0: never).")
    flap_changes: int = Field(4, ge=2, description="This many activations within flap_window_s make a rule flap.")
    flap_window_s: float = Field(600.0, gt=0, description="Window for flap detection.")
    flap_quiet_s: float = Field(120.0, ge=0, description="A flapping alert resolves only after this long clear.")


class HealthSettings(RuleSettings):
    """The rule fields it inherits are the defaults for every service."""

    enabled: bool = Field(True, description="Track health state and raise alerts.")
    failures_to_down: int = Field(3, ge=1, description="Consecutive failed probes before an instance is unhealthy.")
    successes_to_up: int = Field(1, ge=1, description="Consecutive good probes before an instance is healthy again.")
    unknown_after_s: float = Field(
        10.0, gt=0, description="An instance with no result for this long is unknown (counts neither way).")
    forget_after_s: float = Field(600.0, gt=0, description="An instance with no result for this long is forgotten.")
    max_instances_per_service: int = Field(
        1000, ge=1, description="Instances tracked per service; results of further ones are refused and counted.")
    max_services: int = Field(
        1000, ge=1, description="Services tracked (stream signals, and health states, each); records of further "
        "services are indexed but not tracked, counted, and one tracking_cap alert says so.")
    max_instances: int = Field(
        20_000, ge=1, description="Instances tracked over all services; results of further ones are refused and "
        "counted (tracking_cap alert).")
    services: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description='JSON: per-service rule overrides, e.g. {"api-service": {"silence_s": 30}}.',
    )
    caught_up_max_lag: int = Field(
        500, ge=0, description="Consumer lag (records) up to which the shipper counts as caught up (for silence).")
    max_event_delay_s: float = Field(
        30.0, gt=0, description="Records this far behind in event time mean the shipper is draining a backlog.")
    webhook_urls: SecretStr = Field(SecretStr(""), description="Comma list of URLs that get each alert as JSON.")
    slack_webhook_urls: SecretStr = Field(SecretStr(""), description="Comma list of Slack incoming-webhook URLs.")
    webhook_timeout_s: float = Field(5.0, gt=0, description="Timeout of one webhook request.")
    webhook_retries: int = Field(5, ge=0, description="Retries of a failed webhook delivery.")
    webhook_backoff_s: float = Field(0.5, gt=0, description="First retry delay (doubles, up to webhook_backoff_max_s).")
    webhook_backoff_max_s: float = Field(30.0, gt=0, description="Longest retry delay.")
    webhook_queue: int = Field(1000, ge=1, description="Alerts waiting per webhook; beyond it the oldest is dropped.")

    @field_validator("services")
    @classmethod
    def _known_overrides(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for service, overrides in value.items():
            unknown = set(overrides) - set(RuleSettings.model_fields)
            if unknown:
                raise ValueError(f"unknown rule settings for {service}: {sorted(unknown)}")
            RuleSettings(**{**RuleSettings().model_dump(), **overrides})  # validates the values
        return value

    @model_validator(mode="after")
    def _resolve_under_fire(self) -> HealthSettings:
        for name, rules in [("defaults", self.rules), *self._resolved.items()]:
            if rules.error_ratio_resolve > rules.error_ratio_max:
                raise ValueError(f"{name}: error_ratio_resolve must not be over error_ratio_max")
        return self

    @cached_property
    def rules(self) -> RuleSettings:
        return RuleSettings(**{name: getattr(self, name) for name in RuleSettings.model_fields})

    @cached_property
    def _resolved(self) -> dict[str, RuleSettings]:
        base = self.rules.model_dump()
        return {name: RuleSettings(**{**base, **over}) for name, over in self.services.items()}

    def rules_for(self, service: str) -> RuleSettings:
        return self._resolved.get(service, self.rules)

    def urls(self) -> list[tuple[str, str]]:
        """(kind, url) of every webhook: kind `json` or `slack`."""
        out = [("json", u.strip()) for u in self.webhook_urls.get_secret_value().split(",") if u.strip()]
        return out + [("slack", u.strip()) for u in self.slack_webhook_urls.get_secret_value().split(",") if u.strip()]
