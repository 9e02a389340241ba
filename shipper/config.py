"""The shipper's one settings model: env vars (SHIPPER_...), an optional config file, validated at start."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from collector.contract.settings import FileSettings, kafka_bootstrap_field, one_source, read_secret
from collector.contract.streams import DEFAULT_NAMESPACE, TOPIC_DEAD_LETTER, TOPIC_HEALTH, TOPIC_LOGS, TOPIC_METRICS
from shipper.context import TopicRoles
from shipper.health.config import HealthSettings
from shipper.streamcap import DEFAULT_MAX_STREAMS


def _topics(value: str) -> list[str]:
    return [t.strip() for t in value.split(",") if t.strip()]


class ShipperSettings(FileSettings):
    model_config = SettingsConfigDict(env_prefix="SHIPPER_", env_nested_delimiter="__", extra="ignore")

    kafka_bootstrap_servers: str = kafka_bootstrap_field("SHIPPER_")
    group_id: str = Field("elk-shipper", description="Consumer group; replicas with the same id share partitions.")
    topics: str = Field(f"{TOPIC_LOGS},{TOPIC_METRICS},{TOPIC_HEALTH}", description="Topics, comma-separated.")
    metrics_topics: str = Field(
        TOPIC_METRICS,
        description="Which of the topics carry metric documents (-> metrics-<service>-<ns>), comma-separated; "
        "records of other topics are logs unless they say `event.kind: metric`.")
    health_topics: str = Field(
        TOPIC_HEALTH,
        description="Which of the topics carry probe results (-> logs-elk.health-<ns>, read by the health "
        "monitor), comma-separated. Only these topics reach the health stream.")
    dead_letter_topic: str = Field(TOPIC_DEAD_LETTER, description="Topic for records rejected for good.")
    search_url: str = Field(
        "http://127.0.0.1:9200",
        validation_alias=AliasChoices("SHIPPER_SEARCH_URL", "SEARCH_URL"),
        description="Elasticsearch or OpenSearch URL.",
    )
    engine: Literal["auto", "elasticsearch", "opensearch"] = Field(
        "auto", description="Search engine kind; `auto` asks GET / at start."
    )
    search_username: str | None = Field(None, description="Basic-auth user for the search engine.")
    search_password: SecretStr | None = Field(None, description="Basic-auth password (prefer the _FILE variant).")
    search_password_file: Path | None = Field(None, description="File holding the password (Docker secret).")
    search_api_key: SecretStr | None = Field(None, description="Elasticsearch API key (base64 id:key).")
    search_api_key_file: Path | None = Field(None, description="File holding the API key.")
    search_timeout_s: float = Field(30.0, gt=0, description="Timeout of one request to the engine.")
    index_replicas: int | None = Field(
        None, ge=0, le=10,
        description="Replicas of new backing indices; 0 on a single-node cluster, which otherwise stays "
        "yellow. Unset: the engine's default (1).")
    retention_days: int = Field(
        30, ge=1, le=3650,
        description="Elasticsearch: ILM deletes a backing index this many days after its rollover (daily or "
        "at 50 GB). OpenSearch: indices are not deleted by the shipper (no ISM policy is installed).")
    namespace: str = Field(DEFAULT_NAMESPACE, description="Data-stream namespace: `logs-<service>-<namespace>`.")
    service_map: dict[str, str] = Field(
        default_factory=dict,
        description="JSON: container/instance name or regex -> service name, for records without service.name.",
    )
    max_streams: int = Field(
        DEFAULT_MAX_STREAMS, ge=1, le=10000,
        description="Most service data streams (each with its index template and shards) the shipper creates in "
        "its namespace, existing ones included; records of a dataset past it go to `logs-overflow-<ns>` / "
        "`metrics-overflow-<ns>`, counted in shipper_stream_overflow_total and logged once. Mind the cluster's "
        "cluster.max_shards_per_node (1,000 by default, shared with everything on it).")
    batch_max_records: int = Field(5000, ge=1, description="Records per batch taken from Kafka.")
    batch_max_bytes: int = Field(5 * 1024 * 1024, ge=1024,
                                 description="Bytes per batch taken from Kafka and per bulk request.")
    batch_linger_ms: int = Field(200, ge=0, description="How long to wait to fill a batch.")
    max_record_bytes: int = Field(1024 * 1024, ge=1024, description="Larger records are dead-lettered.")
    native_fast_path: bool = Field(
        True, description="Transform the common record with the compiled part (native/, the elk-native package, built "
        "by `make venv`) when it is installed; false keeps the fast path in Python (the same documents, more CPU).")
    bulk_concurrency: int = Field(4, ge=1, le=64, description="Bulk requests in flight at once.")
    max_batches_in_flight: int = Field(
        3, ge=1, le=32,
        description="Batches being transformed/indexed at once; fetching waits beyond that (bounds memory).")
    gzip: bool = Field(False, description="Gzip bulk request bodies.")
    retry_initial_s: float = Field(0.2, gt=0, description="First retry delay for 429/5xx/connection errors.")
    retry_max_s: float = Field(10.0, gt=0, description="Longest retry delay.")
    item_retry_s: float = Field(
        300.0, ge=0, le=86400,
        description="How long one record the engine answers with 5xx/no status/403 is retried (from the first such "
        "answer), then it is dead-lettered (`retries_exhausted`). Overload (item or request 429) and whole-request "
        "outages are waited out without bound: Kafka buffers.")
    http_host: str = Field("127.0.0.1", description="Address of the /health and /metrics endpoint.")
    http_port: int = Field(9108, ge=0, le=65535, description="Port of /health and /metrics (0: pick a free one).")
    shutdown_timeout_s: float = Field(20.0, gt=0, description="Bound on graceful shutdown after SIGTERM.")
    stats_interval_s: float = Field(10.0, gt=0, description="How often pipeline metrics are written.")
    health: HealthSettings = Field(HealthSettings(), description="Health and alerting.")

    @field_validator("topics")
    @classmethod
    def _some_topic(cls, value: str) -> str:
        if not _topics(value):
            raise ValueError("at least one topic")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ShipperSettings:
        one_source(self.search_password, self.search_password_file, "SHIPPER_SEARCH_PASSWORD")
        one_source(self.search_api_key, self.search_api_key_file, "SHIPPER_SEARCH_API_KEY")
        both = set(_topics(self.metrics_topics)) & set(_topics(self.health_topics))
        if both:
            raise ValueError(f"topics {sorted(both)} are in both SHIPPER_METRICS_TOPICS and SHIPPER_HEALTH_TOPICS")
        return self

    @property
    def topic_list(self) -> list[str]:
        return _topics(self.topics)

    @property
    def roles(self) -> TopicRoles:
        return TopicRoles(metrics=frozenset(_topics(self.metrics_topics)),
                          health=frozenset(_topics(self.health_topics)))

    @property
    def password(self) -> str | None:
        return read_secret(self.search_password, self.search_password_file)

    @property
    def api_key(self) -> str | None:
        return read_secret(self.search_api_key, self.search_api_key_file)
