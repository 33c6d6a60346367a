"""librdkafka properties for the SDK's producer, built from the typed settings.

Overrides may be written snake_case (`ssl_certificate_location`) or dotted (`ssl.certificate.location`);
both map to librdkafka's dotted key, and librdkafka itself rejects unknown keys when the client is built
(we turn that into a ConfigError naming the key). The delivery guarantees are not negotiable: overrides
may not switch off idempotence or lower `acks`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from common.config import KafkaSettings, ProducerSettings
from common.errors import ConfigError

# Properties the SDK owns: changing them would break ordering, de-duplication or "nothing dropped".
_GUARANTEES: dict[str, Any] = {"enable.idempotence": True, "acks": "all"}
_EQUIVALENT_ACKS = {"all", "-1"}
# Librdkafka key whose name legitimately contains an underscore, so snake_case mapping must skip it.
_UNDERSCORE_KEYS = frozenset({"ssl_engine_callback_data"})


def librdkafka_key(name: str) -> str:
    """`ssl_certificate_location` -> `ssl.certificate.location` (dotted keys pass through)."""
    return name if name in _UNDERSCORE_KEYS else name.replace("_", ".")


def normalize_overrides(overrides: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in overrides.items():
        key = librdkafka_key(name)
        if key in out:
            raise ConfigError(f"Kafka override {key!r} is given twice (as {name!r} and another spelling)")
        if key in _GUARANTEES and str(value).lower() not in _allowed(key):
            raise ConfigError(
                f"Kafka override {key}={value!r} would weaken delivery guarantees; the SDK always uses "
                f"{key}={_GUARANTEES[key]}"
            )
        out[key] = value
    return out


def _allowed(key: str) -> set[str]:
    return _EQUIVALENT_ACKS if key == "acks" else {"true"}


def producer_config(
    kafka: KafkaSettings, settings: ProducerSettings, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The full librdkafka configuration (contains secrets: never log it)."""
    conf: dict[str, Any] = {
        **kafka.client_config(),
        **_GUARANTEES,
        "linger.ms": settings.linger_ms,
        "compression.type": settings.compression,
        "queue.buffering.max.messages": settings.queue_max_messages,
        "queue.buffering.max.kbytes": settings.queue_max_kbytes,
        "message.timeout.ms": settings.delivery_timeout_ms,
        # Same key -> same partition as the Java client, so a match's events stay in order everywhere.
        "partitioner": "murmur2_random",
    }
    conf.update(normalize_overrides(settings.kafka_overrides))
    conf.update(normalize_overrides(extra or {}))
    return conf


def kafka_config_error(exc: Exception) -> ConfigError:
    """A ConfigError for librdkafka's refusal of a configuration (e.g. an unknown property)."""
    return ConfigError(f"invalid Kafka client configuration: {exc}")
