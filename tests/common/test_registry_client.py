"""One registry client factory and one reading of the registry's errors (no services needed)."""

from __future__ import annotations

import pytest
from confluent_kafka.schema_registry.error import SchemaRegistryError
from pydantic import SecretStr

from common.config import RegistrySettings
from common.errors import ConfigError
from common.registry_client import (
    check_registry_url,
    is_access_denied,
    is_not_found,
    redacted_url,
    registry_client,
)


@pytest.mark.parametrize(
    "url", ["localhost:8081", "127.0.0.1:8081", "ftp://registry:8081", "http://", "registry", "http://a, b:1"]
)
def test_a_url_without_http_or_https_is_a_one_line_config_error(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        registry_client(RegistrySettings(url=url))
    message = str(caught.value)
    assert "\n" not in message and "http:// or https://" in message and "REFINERY_REGISTRY_URL" in message


def test_good_urls_pass_and_lists_are_checked_part_by_part() -> None:
    assert check_registry_url("https://sr.example:443") == "https://sr.example:443"
    assert check_registry_url("http://a:1, http://b:2") == "http://a:1,http://b:2"
    assert check_registry_url("HTTP://a:1") == "HTTP://a:1"


def test_credentials_never_reach_the_error_message() -> None:
    with pytest.raises(ConfigError) as caught:
        check_registry_url("http://ok:1,ftp://alice:s3cret@host:1")
    assert "s3cret" not in str(caught.value) and "ftp://host:1" in str(caught.value)
    assert redacted_url("http://alice:s3cret@host:8081/sr") == "http://host:8081/sr"


def test_credentials_become_basic_auth() -> None:
    client = registry_client(RegistrySettings(url="http://h:1", username="alice", password=SecretStr("pw:x")))
    assert client._rest_client.auth == ("alice", "pw:x")
    assert registry_client(RegistrySettings(url="http://h:1"))._rest_client.auth is None


def test_overrides_are_client_properties_in_snake_case() -> None:
    client = registry_client(RegistrySettings(url="http://h:1"), max_retries=4, timeout=1.5)
    assert client._rest_client.max_retries == 4 and client._rest_client.timeout == 1.5
    with pytest.raises(ConfigError, match=r"no\.such\.property"):
        registry_client(RegistrySettings(url="http://h:1"), no_such_property=1)


@pytest.mark.parametrize(
    ("status", "code", "not_found", "denied"),
    [
        (404, 40401, True, False),  # subject
        (404, 40402, True, False),  # version
        (404, 40403, True, False),  # schema
        (404, 40400, True, False),  # confluent-kafka's mock:// client
        (404, None, False, False),  # a bare 404: a wrong URL, not a missing schema
        (404, -1, False, False),  # a 404 page that is not JSON
        (404, 404, False, False),  # Confluent's answer for an unknown endpoint
        (401, 40101, False, True),
        (403, 40301, False, True),
        (401, None, False, True),
        (500, 50001, False, False),
    ],
)
def test_not_found_and_access_denied(status: int, code: int | None, not_found: bool, denied: bool) -> None:
    exc = SchemaRegistryError(status, code, "answer")  # type: ignore[arg-type]
    assert is_not_found(exc) is not_found
    assert is_access_denied(exc) is denied


def test_other_exceptions_are_neither() -> None:
    assert not is_not_found(ValueError("404")) and not is_access_denied(OSError("401"))
