"""elk-pipeline shipper: Kafka -> decode -> enrich -> route -> bulk sink -> commit."""
