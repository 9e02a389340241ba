"""Health state, stream signals and alerts (plugs into the shipper as its Monitor)."""

from __future__ import annotations

from shipper.health.config import HealthSettings
from shipper.health.monitor import HealthMonitor
from shipper.monitor import Monitor, NullMonitor


def build_monitor(settings: object) -> Monitor:
    """Accepts the shipper's settings (uses its `.health`) or a HealthSettings directly."""
    health = getattr(settings, "health", settings)
    if not isinstance(health, HealthSettings):
        health = HealthSettings()
    namespace = str(getattr(settings, "namespace", "default"))
    topics = getattr(settings, "topic_list", None)
    roles = getattr(settings, "roles", None)
    if not health.enabled:
        return NullMonitor()
    service_map = getattr(settings, "service_map", None)
    if roles is None:
        return HealthMonitor(health, namespace, topics, service_map=service_map)
    return HealthMonitor(health, namespace, topics, roles.health, roles.metrics, service_map)
