"""Producer SDK: what studio code calls to send envelopes to the ingest topics."""
