"""The record contract: every rule that two components need, in one place.

Each module holds one idea and has a table test in tests/contract/. Components (the library,
the ingest API, the prober, the tailer, the shipper, the Kibana objects, the demo) import these
functions and never restate them:

- `ecs`       ECS version and the field names the product writes
- `streams`   Kafka topics, datasets and data-stream naming
- `timefmt`   time formatting (one form: UTC, milliseconds, `Z`) and parsing
- `levels`    log level vocabulary and aliases
- `names`     instance -> service
- `health`    health status vocabulary and how a probe answer reads
- `promtext`  Prometheus text exposition for the scrape endpoints
- `settings`  secrets, config files, Kafka fallback and error messages of the settings models

Only the standard library (and pydantic in `settings`) is imported here: the bare library
install depends on it.
"""
