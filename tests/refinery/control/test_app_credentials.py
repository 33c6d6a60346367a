"""The Faust app connects with the same security settings as the confluent clients (`KafkaSettings`)."""

from __future__ import annotations

import faust
import pytest
from pydantic import SecretStr

from common.config import KafkaSettings
from common.errors import ConfigError
from refinery.control.app import faust_credentials


def test_plaintext_needs_no_credentials() -> None:
    assert faust_credentials(KafkaSettings(security_protocol="PLAINTEXT")) is None


@pytest.mark.parametrize(
    ("protocol", "expected"), [("SASL_PLAINTEXT", "SASL_PLAINTEXT"), ("sasl_ssl", "SASL_SSL")]
)
def test_sasl_settings_become_sasl_credentials(protocol: str, expected: str) -> None:
    kafka = KafkaSettings(
        security_protocol=protocol, sasl_mechanism="SCRAM-SHA-256", sasl_username="alice",
        sasl_password=SecretStr("pw"),
    )  # fmt: skip
    credentials = faust_credentials(kafka)
    assert isinstance(credentials, faust.SASLCredentials)
    assert (credentials.username, credentials.password) == ("alice", "pw")
    assert credentials.mechanism.value == "SCRAM-SHA-256"
    assert credentials.protocol.value == expected
    assert (credentials.ssl_context is not None) == (expected == "SASL_SSL")
    assert "pw" not in repr(credentials)


def test_ssl_settings_become_ssl_credentials() -> None:
    credentials = faust_credentials(KafkaSettings(security_protocol="SSL"))
    assert isinstance(credentials, faust.SSLCredentials) and credentials.protocol.value == "SSL"


def test_unknown_protocol_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="SASL_SSL"):
        faust_credentials(KafkaSettings(security_protocol="KERBEROS"))
