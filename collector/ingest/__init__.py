"""The HTTP ingest API (`collector serve`): services that cannot import the library POST ECS records here.

`create_app(IngestSettings())` builds the FastAPI app; records are validated into the library's
ECS shape and produced to Kafka with `acks=all` before the API answers 202.
"""
