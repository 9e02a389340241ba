"""`collector otlp` settings: the ingest API's (tokens, Kafka, topics, limits, redaction: every
`INGEST_*` variable, so both intakes of a deployment share them) plus the OTLP listener's own."""

from __future__ import annotations

from pydantic import Field

from collector.ingest.config import IngestSettings
from collector.otlp.mapping import DEFAULT_MAX_ATTRIBUTES


class OtlpSettings(IngestSettings):
    otlp_host: str = Field("127.0.0.1", description="Address the OTLP/HTTP listener binds to (0.0.0.0 in a container).")
    otlp_port: int = Field(4318, ge=0, le=65535, description="TCP port of OTLP/HTTP (4318 is OTLP's conventional one).")
    otlp_grpc_port: int = Field(
        4317, ge=0, le=65535, description="TCP port of OTLP/gRPC (4317 is OTLP's conventional one); 0: no gRPC.",
    )
    otlp_grpc_max_calls: int = Field(
        16, gt=0, le=1000,
        description="Most OTLP/gRPC calls in process at once (each holds up to INGEST_MAX_BODY_BYTES); "
                    "more are answered RESOURCE_EXHAUSTED by grpcio.",
    )
    otlp_max_attributes: int = Field(
        DEFAULT_MAX_ATTRIBUTES, gt=0, le=1000,
        description="Most attributes (resource + record) kept per record as ECS fields, labels or extra; "
                    "the rest are counted in labels.otel_dropped_attributes.",
    )
