"""`collector tail`: log files and Docker containers' json-file logs to Kafka, positions kept.

Topology, Vector-like: inputs (files/globs, Docker json-file) -> reader (one per file identity,
rotation/truncation/deletion) -> multiline joiner -> parser (ECS) -> Kafka sink (acks=all) ->
registry (positions advanced only for acknowledged records).
"""
