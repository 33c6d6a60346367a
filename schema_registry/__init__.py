"""Confluent-compatible schema registry service (FastAPI), stored in a compacted Kafka topic."""
