"""Health prober: polls /health endpoints in parallel and publishes results to elk-health."""
