"""elk-pipeline collector: structured logging for services, the HTTP ingest API and the health prober."""
