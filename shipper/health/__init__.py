"""Health state, stream signals and alerts (plugs into the shipper as its Monitor)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shipper.health.monitor import Forward
    from shipper.monitor import Monitor


def build_monitor(settings: object, forward: Forward | None = None) -> Monitor:
    """Accepts the shipper's settings (uses its `.health`) or a HealthSettings directly; `forward`
    produces stream shares to Kafka (shipper/health/shares.py)."""
    # imported here, not with the package: the settings (shipper.config -> shipper.health.config) load
    # this package, and `shipper setup`, `replay` and --help need none of the monitor's modules
    from shipper.health.config import HealthSettings
    from shipper.health.monitor import HealthMonitor
    from shipper.monitor import NullMonitor

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
