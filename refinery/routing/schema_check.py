"""Is a schema id registered? A cached answer, so the hot path almost never talks HTTP.

Known ids are remembered for the life of the process (registered ids are immutable). Unknown ids are
remembered for `negative_ttl_s`, then asked again, so a schema registered a moment after its first
records does not keep them in the DLQ for long. When the registry cannot be reached the record is let
through (fail open) and `unreachable` counts it: an outage of the registry must not send valid data to
the DLQ. When the registry refuses our credentials (401/403) the check fails closed: `known` raises
`RegistryAccessError` naming the registry and the status, so the caller stops routing (nothing is let
through, nothing is dead-lettered) until access works again; a denial is never cached.
The client and the meaning of the registry's answers come from `common.registry_client`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka.schema_registry.error import SchemaRegistryError

from common.config import RegistrySettings
from common.errors import RegistryAccessError
from common.registry_client import is_access_denied, is_not_found, redacted_url, registry_client

log = logging.getLogger(__name__)

RETRY_UNREACHABLE_S = 5.0


class SchemaIdChecker:
    def __init__(self, client: Any, *, negative_ttl_s: float = 30.0, url: str = "") -> None:
        self._client = client
        self._negative_ttl_s = negative_ttl_s
        self.url = redacted_url(url) if url else "(unnamed)"
        self._known: set[bytes] = set()
        self._unknown_until: dict[bytes, float] = {}
        self._down_until = 0.0
        self.unreachable = 0

    @classmethod
    def from_settings(cls, registry: RegistrySettings, *, negative_ttl_s: float) -> SchemaIdChecker:
        """A checker on the registry of `registry`, with its credentials (ConfigError for a bad URL)."""
        return cls(registry_client(registry), negative_ttl_s=negative_ttl_s, url=registry.url)

    @classmethod
    def from_url(cls, url: str, *, negative_ttl_s: float = 30.0, **overrides: Any) -> SchemaIdChecker:
        """`from_settings` with this URL (credentials, if any, from the environment)."""
        registry = RegistrySettings(url=url)
        return cls(registry_client(registry, **overrides), negative_ttl_s=negative_ttl_s, url=url)

    def known(self, schema_id: bytes) -> bool:
        """Whether the registry has this id (True too while it cannot be reached); RegistryAccessError
        when it refuses our credentials."""
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
            if is_not_found(exc):
                self._unknown_until[schema_id] = now + self._negative_ttl_s
                return False
            if is_access_denied(exc):
                raise RegistryAccessError(
                    f"schema registry at {self.url} refused access (HTTP {exc.http_status_code}, error code "
                    f"{exc.error_code}) while checking schema id {schema_id.decode()}: check "
                    "REFINERY_REGISTRY_USERNAME / REFINERY_REGISTRY_PASSWORD and the user's role"
                ) from None
            return self._fail_open(exc)
        except Exception as exc:  # noqa: BLE001 - transport errors of any kind: registry unreachable
            return self._fail_open(exc)
        self._unknown_until.pop(schema_id, None)
        self._known.add(schema_id)
        return True

    def _fail_open(self, exc: Exception | None) -> bool:
        if exc is not None:
            self._down_until = time.monotonic() + RETRY_UNREACHABLE_S
            log.warning(
                "schema registry unreachable; letting records through",
                extra={"registry": self.url, "error": str(exc)},
            )
        self.unreachable += 1
        return True
