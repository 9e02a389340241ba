"""Health state, stream signals and alerts (plugs into the shipper as its Monitor)."""

from __future__ import annotations

from shipper.health.config import HealthSettings
from shipper.health.monitor import Forward, HealthMonitor
from shipper.monitor import Monitor, NullMonitor


def build_monitor(settings: object, forward: Forward | None = None) -> Monitor:
    """Accepts the shipper's settings (uses its `.health`) or a HealthSettings directly; `forward`
    produces stream shares to Kafka (shipper/health/shares.py)."""
    health = getattr(settings, "health", settings)
    if not isinstance(health, HealthSettings):
        health = HealthSettings()
    namespace = str(getattr(settings, "namespace", "default"))
    topics = getattr(settings, "topic_list", None)
    roles = getattr(settings, "roles", None)
    if not health.enabled:
        return NullMonitor()
    if roles is None:
        monitor = HealthMonitor(health, namespace, topics)
    else:
        monitor = HealthMonitor(health, namespace, topics, roles.health, roles.metrics)
    monitor.forward = forward
    monitor.group = str(getattr(settings, "group_id", ""))
    return monitor
