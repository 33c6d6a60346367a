"""The one way every package reaches the schema registry, and the one reading of its answers.

`registry_client(settings)` builds confluent-kafka's `SchemaRegistryClient` from `RegistrySettings`: the
URL is checked first (a `ConfigError` saying what to fix, not a traceback from inside the client), the
credentials (`REFINERY_REGISTRY_USERNAME` / `_PASSWORD`) go in as `basic.auth.user.info`, timeouts are
short and there is one retry; `**overrides` are client properties in snake_case (`max_retries=3` is
`max.retries`). The SDK (`producers/schemas.py`), the worker's schema-id check
(`refinery/routing/schema_check.py`), the catalog and `refinery-reconcile` all use it.

`is_not_found(exc)`: the registry says the subject, version or schema does not exist, with a Confluent
error code (40401 subject, 40402 version, 40403 schema; 40400 is what confluent-kafka's `mock://`
client answers). A bare HTTP 404 without one is *not* "not found": it is what a wrong URL (a path
prefix, another service) answers, and reading it as "unknown schema" would dead-letter every record.
`is_access_denied(exc)`: the registry refused our credentials (HTTP 401/403, codes 40101/40301).
`TRANSPORT_ERRORS`: the exceptions of a registry that cannot be reached at all.
`not_a_registry(exc, url)`: one line saying `url` is not a schema registry, when an HTTP error came
without a Confluent error code in a JSON body (a web server or another service at that address).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from common.config import RegistrySettings
from common.errors import ConfigError

NOT_FOUND_CODES = frozenset({40400, 40401, 40402, 40403})
ACCESS_DENIED_STATUSES = frozenset({401, 403})
ACCESS_DENIED_CODES = frozenset({40101, 40301})
DEFAULTS: dict[str, Any] = {"timeout": 5.0, "max.retries": 1, "retries.wait.ms": 200}

try:  # confluent-kafka may run on the `httpx2` fork; its transport errors are not plain httpx's.
    from confluent_kafka.schema_registry.common._httpx_compat import httpx as _client_httpx

    TRANSPORT_ERRORS: tuple[type[Exception], ...] = (httpx.HTTPError, _client_httpx.HTTPError)
except ImportError:  # pragma: no cover - older confluent-kafka used httpx directly
    TRANSPORT_ERRORS = (httpx.HTTPError,)


def check_registry_url(url: str) -> str:
    """`url` if every comma-separated part is an http(s) URL with a host, else ConfigError (one line)."""
    parts = [part.strip() for part in url.split(",")]
    for part in parts:
        parsed = urlsplit(part)
        if parsed.scheme.lower() not in ("http", "https") or not parsed.hostname:
            raise ConfigError(
                f"schema registry URL {redacted_url(part)!r} (REFINERY_REGISTRY_URL) must start with "
                "http:// or https:// and name a host, e.g. http://127.0.0.1:8081"
            )
    return ",".join(parts)


def redacted_url(url: str) -> str:
    """`url` without any user:password part, for messages and logs."""
    parts = []
    for part in url.split(","):
        parsed = urlsplit(part.strip())
        if parsed.username is not None or parsed.password is not None:
            parsed = parsed._replace(netloc=parsed.netloc.rpartition("@")[2])
        parts.append(parsed.geturl())
    return ",".join(parts)


def registry_client(settings: RegistrySettings, **overrides: Any) -> SchemaRegistryClient:
    """confluent-kafka's registry client for `settings` (see the module docstring); ConfigError if the
    settings or overrides cannot make one."""
    conf: dict[str, Any] = {"url": check_registry_url(settings.url), **DEFAULTS}
    if settings.username:  # an empty REFINERY_REGISTRY_USERNAME means none
        password = settings.password.get_secret_value() if settings.password is not None else ""
        conf["basic.auth.user.info"] = f"{settings.username}:{password}"
    conf.update({key.replace("_", "."): value for key, value in overrides.items()})
    try:
        return SchemaRegistryClient(conf)
    except (ValueError, TypeError) as exc:  # e.g. "Unrecognized properties: ..."
        raise ConfigError(f"invalid schema registry client configuration: {exc}") from None


def is_not_found(exc: BaseException) -> bool:
    """The registry answered that the subject, version or schema does not exist."""
    return isinstance(exc, SchemaRegistryError) and exc.error_code in NOT_FOUND_CODES


def not_a_registry(exc: BaseException, url: str) -> str | None:
    """A one-line message if `exc` is an HTTP error without a Confluent error code (not a registry)."""
    if not isinstance(exc, SchemaRegistryError) or exc.http_status_code in ACCESS_DENIED_STATUSES:
        return None
    if exc.error_code not in (None, -1) or not 400 <= exc.http_status_code < 500:
        return None
    return (
        f"{redacted_url(url)} is not a schema registry: it answered HTTP {exc.http_status_code} without a "
        "Confluent error code (check REFINERY_REGISTRY_URL or --registry-url)"
    )


def is_access_denied(exc: BaseException) -> bool:
    """The registry refused our credentials or our role (401/403)."""
    return isinstance(exc, SchemaRegistryError) and (
        exc.http_status_code in ACCESS_DENIED_STATUSES or exc.error_code in ACCESS_DENIED_CODES
    )
