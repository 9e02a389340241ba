"""Health and alerting settings, nested in the shipper's settings as SHIPPER_HEALTH__*."""

from __future__ import annotations

from pydantic import BaseModel, Field


class HealthSettings(BaseModel):
    enabled: bool = Field(True, description="Track health state and raise alerts.")
    failures_to_down: int = Field(3, ge=1, description="Consecutive failed probes before an instance is unhealthy.")
    successes_to_up: int = Field(1, ge=1, description="Consecutive good probes before an instance is healthy again.")
