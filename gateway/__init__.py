"""`refinery-gateway`: the HTTP ingest gateway for clients that cannot speak Kafka (game clients on
consoles, phones and browsers; services in any language). `POST /v1/events` takes a batch (JSON array,
NDJSON or protobuf, optionally gzip or zstd), checks it against the API key's scope, validates every
event with the producer SDK and answers per event once Kafka has acknowledged.

Modules: `app` (HTTP), `service` (batch -> Kafka -> outcomes), `records` (events -> records through the
SDK), `events` (bodies -> events), `keys` (API keys and their topic), `ratelimit`, `metrics`, `docs`
(OpenAPI shapes), `cli` (`refinery-gateway serve | keys ...`).
"""
