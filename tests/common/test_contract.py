"""`common.contract`: the rule catalog, the value rules at their edges, murmur2 as the Java client, and the
SDK refusing what the contract forbids (attribute names, records over the size limit)."""

from __future__ import annotations

import ctypes
from typing import Any

import pytest

from common import contract
from common.envelope import FORMAT_BY_NAME
from common.errors import InvalidInputError
from common.headers import REQUIRED_HEADERS
from producers.producer import Producer
from refinery.routing.dlq import DlqReason
from tests.support import offline_producer as offline


def test_every_worker_rule_names_a_real_dlq_reason_and_formats_are_the_envelopes() -> None:
    reasons = {r.value for r in DlqReason}
    assert all(rule.dlq in reasons for rule in contract.RULES.values() if rule.dlq)
    assert {rule.level for rule in contract.RULES.values()} == {"MUST", "SHOULD"}
    assert tuple(FORMAT_BY_NAME) == contract.FORMATS
    assert REQUIRED_HEADERS == contract.REQUIRED_HEADERS and contract.FORMAT in REQUIRED_HEADERS


@pytest.mark.parametrize(
    ("name", "value", "rule"),
    [
        ("ce_version", b"01", "header.integer"),
        ("ce_version", b"4294967295", None),
        ("ce_version", b"4294967296", "header.integer"),
        ("ce_schemaid", b"2147483648", "header.integer"),
        ("ce_version", "\u0661".encode(), "header.integer"),  # a digit, but not ASCII
        ("ce_env", b"pr.od", "header.component"),
        ("ce_title", b"\xff", "header.utf8"),
        ("ce_format", b"unspecified", "header.format"),
        ("ce_id", b"x" * 201, "header.message_id"),
        ("ce_id", b"", "header.message_id"),
        ("attr.platform", b"any text", None),
    ],
)
def test_header_values_at_their_edges(name: str, value: bytes, rule: str | None) -> None:
    problem = contract.header_problem(name, value)
    assert (problem[0] if problem else None) == rule
    if problem:
        assert repr(name) in problem[1]


def test_murmur2_is_the_java_clients() -> None:
    # org.apache.kafka.common.utils.UtilsTest#testMurmur2
    cases = {b"21": -973932308, b"foobar": -790332482, b"a-little-bit-long-string": -985981536,
             b"a-little-bit-longer-string": -1486304829,
             b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971, b"abc": 479470107}  # fmt: skip
    assert {k: ctypes.c_int32(contract.murmur2(k)).value for k in cases} == cases


def test_uuid7_and_time_forms() -> None:
    assert contract.is_uuid7("019b7a3e-5c1d-7c3a-9f2e-3b4c5d6e7f80")
    assert not contract.is_uuid7("019B7A3E-5C1D-7C3A-9F2E-3B4C5D6E7F80")  # canonical text is lowercase
    assert not contract.is_uuid7("019b7a3e-5c1d-4c3a-9f2e-3b4c5d6e7f80")  # a v4
    assert contract.is_canonical_time("2026-01-01T00:00:00.123Z")
    assert not contract.is_canonical_time("2026-01-01T00:00:00Z")


@pytest.fixture
def offline_producer() -> Any:
    with offline() as producer:
        yield producer


@pytest.mark.parametrize("name", ["", "with space", "x=y", "plätform"])
def test_the_sdk_refuses_attribute_names_routes_cannot_match(offline_producer: Producer, name: str) -> None:
    with pytest.raises(InvalidInputError, match="attribute name"):
        offline_producer.prepare("1", "c", 1, b"x", attributes={name: "v"})


def test_the_sdk_refuses_records_over_the_limit_counting_key_and_headers(offline_producer: Producer) -> None:
    record = offline_producer.prepare("1", "c", 1, b"x" * 999_000, key=b"k")  # headers fit: accepted
    assert len(record.value) < contract.MAX_RECORD_BYTES
    with pytest.raises(InvalidInputError, match="limit is 1000000"):
        offline_producer.prepare("1", "c", 1, b"x" * 999_000, key=b"k" * 700)  # the key tips it over
    with pytest.raises(InvalidInputError, match="limit is 1000000"):
        offline_producer.prepare("1", "c", 1, b"x" * 999_000, attributes={"a": "v" * 600})
