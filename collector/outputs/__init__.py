"""Where rendered records go: stdout (default), Kafka, the HTTP ingest API, or memory (tests)."""
