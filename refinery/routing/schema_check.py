"""Is a schema id registered? A cached answer, so the hot path almost never talks HTTP.

Known ids are remembered for the life of the process (registered ids are immutable). Unknown ids are
remembered for `negative_ttl_s`, then asked again, so a schema registered a moment after its first
records does not keep them in the DLQ for long. When the registry cannot be reached the record is let
through (fail open) and `unreachable` counts it: an outage of the registry must not send valid data to
the DLQ.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

log = logging.getLogger(__name__)

NOT_FOUND_CODES = {40403, 404}
RETRY_UNREACHABLE_S = 5.0


class SchemaIdChecker:
    def __init__(self, client: Any, *, negative_ttl_s: float = 30.0) -> None:
        self._client = client
        self._negative_ttl_s = negative_ttl_s
        self._known: set[bytes] = set()
        self._unknown_until: dict[bytes, float] = {}
        self._down_until = 0.0
        self.unreachable = 0

    @classmethod
    def from_url(cls, url: str, *, negative_ttl_s: float = 30.0, **client_conf: Any) -> SchemaIdChecker:
        return cls(SchemaRegistryClient({"url": url, **client_conf}), negative_ttl_s=negative_ttl_s)

    def known(self, schema_id: bytes) -> bool:
        if schema_id in self._known:
            return True
        now = time.monotonic()
        if self._unknown_until.get(schema_id, 0.0) > now:
            return False
        if self._down_until > now:
            return self._fail_open(None)
        try:
            self._client.get_schema(int(schema_id))
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404 or exc.error_code in NOT_FOUND_CODES:
                self._unknown_until[schema_id] = now + self._negative_ttl_s
                return False
            return self._fail_open(exc)
        except Exception as exc:  # noqa: BLE001 - transport errors of any kind: registry unreachable
            return self._fail_open(exc)
        self._unknown_until.pop(schema_id, None)
        self._known.add(schema_id)
        return True

    def _fail_open(self, exc: Exception | None) -> bool:
        if exc is not None:
            self._down_until = time.monotonic() + RETRY_UNREACHABLE_S
            log.warning("schema registry unreachable; letting records through", extra={"error": str(exc)})
        self.unreachable += 1
        return True
