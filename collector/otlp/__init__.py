"""OpenTelemetry intake: OTLP/HTTP logs and metrics (protobuf or JSON, gzip) mapped to the
library's ECS documents and produced to Kafka with the ingest API's guarantees.

- `decode`   request body -> the official generated request classes (`opentelemetry-proto`)
- `bound`    the record-count limit, checked before those classes build the request
- `mapping`  OTLP -> ECS documents, pure functions (the table is in docs/otel.md)
- `metrics`  OTLP metric data points -> the library's metric document values
- `config`   `OtlpSettings`: the ingest API's settings plus the OTLP listener's own
- `app`      the OTLP/HTTP app (`collector otlp`, port 4318); bodies are read by the ingest API's
             `collector.ingest.body.read` (streamed byte count, every gzip member, in-flight bound)
"""
