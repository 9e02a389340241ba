"""Health and alerting settings, nested in the shipper's settings as SHIPPER_HEALTH__*."""

from __future__ import annotations

from pydantic import BaseModel, Field


class HealthSettings(BaseModel):
    enabled: bool = Field(True, description="Track health state and raise alerts.")
