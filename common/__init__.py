"""Code shared by every Refinery package: configuration, logging, errors, the envelope helpers,
the envelope <-> Kafka header mapping, topic names and the local Kafka runner."""
