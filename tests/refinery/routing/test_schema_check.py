"""The schema-id check with a fake registry client: cached answers, fail open when the registry cannot be
reached, fail closed (RegistryAccessError, nothing let through) when it refuses our credentials."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from confluent_kafka.schema_registry.error import SchemaRegistryError
from pydantic import SecretStr

from common.config import RegistrySettings
from common.errors import ConfigError, RegistryAccessError
from refinery.routing import schema_check
from refinery.routing.dlq import DlqReason
from refinery.routing.guards import RecordGuard, Rejection
from refinery.routing.schema_check import SchemaIdChecker
from tests.refinery.worker.worker_harness import record

URL = "http://registry.test:8081"


class FakeClient:
    """`get_schema(id)`: answers from `answer(id)` (raise to fail), counting the calls."""

    def __init__(self, answer: Callable[[int], object]) -> None:
        self.answer = answer
        self.calls: list[int] = []

    def get_schema(self, schema_id: int) -> object:
        self.calls.append(schema_id)
        return self.answer(schema_id)


def _raise(exc: Exception) -> Callable[[int], object]:
    def answer(_schema_id: int) -> object:
        raise exc

    return answer


def _checker(answer: Callable[[int], object], **kwargs: float) -> tuple[SchemaIdChecker, FakeClient]:
    client = FakeClient(answer)
    return SchemaIdChecker(client, url=URL, **kwargs), client


def test_known_ids_are_asked_once() -> None:
    checker, client = _checker(lambda _id: object())
    assert all(checker.known(b"7") for _ in range(5))
    assert client.calls == [7]


def test_unknown_ids_are_remembered_for_the_negative_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(schema_check.time, "monotonic", lambda: now[0])
    checker, client = _checker(_raise(SchemaRegistryError(404, 40403, "Schema not found")), negative_ttl_s=30)
    assert not checker.known(b"9") and not checker.known(b"9")
    assert client.calls == [9]
    now[0] += 31
    assert not checker.known(b"9")
    assert client.calls == [9, 9] and checker.unreachable == 0


@pytest.mark.parametrize(("status", "code"), [(401, 40101), (403, 40301), (401, None)])
def test_access_denied_fails_closed_and_loudly(status: int, code: int | None) -> None:
    denied = SchemaRegistryError(status, code, "Unauthorized")  # type: ignore[arg-type]
    checker, client = _checker(_raise(denied))
    for _ in range(2):  # never cached: every call asks again (access may be fixed on the registry)
        with pytest.raises(RegistryAccessError) as caught:
            checker.known(b"7")
        assert URL in str(caught.value) and f"HTTP {status}" in str(caught.value)
    assert client.calls == [7, 7]
    assert checker.unreachable == 0  # not an outage: nothing was let through


def test_the_guard_lets_a_denial_through_to_its_caller() -> None:
    checker, _ = _checker(_raise(SchemaRegistryError(403, 40301, "Forbidden")))
    value, headers = record("prod", "src", "1234", "kill", schema_id=7)
    guard = RecordGuard(schema_checker=checker)
    with pytest.raises(RegistryAccessError):  # not a Rejection: the record is neither routed nor dead
        guard.check("prod.src.ingest.all-v1", value, headers)


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError("connection refused"),
        SchemaRegistryError(503, 50301, "unavailable"),
        SchemaRegistryError(404, None, "Not Found"),  # type: ignore[arg-type]  # a wrong URL, not an unknown id
    ],
)
def test_an_unreachable_registry_fails_open(failure: Exception) -> None:
    checker, client = _checker(_raise(failure))
    assert checker.known(b"7") and checker.known(b"8")
    assert checker.unreachable == 2 and client.calls == [7]  # the second waits RETRY_UNREACHABLE_S


def test_an_unknown_id_is_a_rejection_in_the_guard() -> None:
    checker, _ = _checker(_raise(SchemaRegistryError(404, 40403, "Schema not found")))
    value, headers = record("prod", "src", "1234", "kill", schema_id=7)
    guard = RecordGuard(schema_checker=checker)
    with pytest.raises(Rejection) as caught:
        guard.check("prod.src.ingest.all-v1", value, headers)
    assert caught.value.reason is DlqReason.UNKNOWN_SCHEMA


def test_from_settings_uses_the_credentials_and_never_shows_them() -> None:
    settings = RegistrySettings(url="http://u:inline@h:1", username=None)
    checker = SchemaIdChecker.from_settings(settings, negative_ttl_s=5)
    assert "inline" not in checker.url and checker.url == "http://h:1"
    settings = RegistrySettings(url=URL, username="worker", password=SecretStr("pw"))
    checker = SchemaIdChecker.from_settings(settings, negative_ttl_s=5)
    assert checker._client._rest_client.auth == ("worker", "pw")
    with pytest.raises(ConfigError, match="http:// or https://"):
        SchemaIdChecker.from_settings(RegistrySettings(url="registry:8081"), negative_ttl_s=5)
