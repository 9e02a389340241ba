"""Health state, stream signals and alerts (plugs into the shipper as its Monitor)."""
