"""Property tests on arbitrary input where tests/common and tests/refinery are thin: headers with arbitrary
names, values, duplicates and huge values; the worker's pre-routing guard; mutated envelopes; and a whole
routed batch of arbitrary records. Nothing crashes; every rejection is a typed error; counts add up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.envelope import decode_envelope, encode_envelope, make_envelope
from common.errors import EnvelopeError, HeaderError
from common.headers import REQUIRED_HEADERS, headers_to_metadata, metadata_to_headers
from refinery.dedup.store import DedupStore
from refinery.routing.batch import route_batch
from refinery.routing.dlq import DlqReason
from refinery.routing.guards import RecordGuard, Rejection
from refinery.routing.router import compile_router
from refinery.routing.rules import load_route_set
from tests.reliability.figures import record_figures

EXAMPLES = 1000
FUZZED: dict[str, int] = {}

KNOWN = [
    *REQUIRED_HEADERS,
    "ce_time",
    "ce_format",
    "ce_producer",
    "ce_specversion",
    "content-type",
    "attr.platform",
]
names = st.one_of(st.sampled_from(KNOWN), st.text(max_size=30))
values = st.one_of(
    st.sampled_from([b"prod", b"dev", b"1234", b"1", b"7", b"avro", b"2026-11-24T03:52:04.123Z", b"", b"0"]),
    st.binary(max_size=64),
    st.text(max_size=64).map(str.encode),
    st.integers(min_value=60_000, max_value=120_000).map(lambda n: b"v" * n),  # huge values
)
header_lists = st.lists(st.tuples(names, st.one_of(values, st.none())), max_size=20)


def good_headers(**attrs: str) -> list[tuple[str, Any]]:
    envelope = make_envelope(
        env="prod", source="s", title="1234", category="kill", version=1, schema_id=7,
        payload_format="raw", payload=b"p", producer="fuzz", attributes=attrs,
    )  # fmt: skip
    return list(metadata_to_headers(envelope.metadata))


def count(name: str) -> None:
    FUZZED[name] = FUZZED.get(name, 0) + 1


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        header_lists, st.tuples(header_lists, header_lists).map(lambda p: [*p[0], *good_headers(), *p[1]])
    )
)
def test_headers_to_metadata_only_raises_header_error(headers: list[tuple[str, Any]]) -> None:
    count("headers_to_metadata")
    try:
        md = headers_to_metadata(headers)
    except HeaderError as exc:
        assert str(exc)
        return
    assert md.message_id and md.env and md.version >= 1


@dataclass
class FakeRecord:
    """What the data plane reads from a consumed record (`refinery.routing.batch.RecordLike`)."""

    _topic: str
    _offset: int
    _value: bytes | None
    _headers: list[tuple[str, Any]] | None

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return None

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, Any]] | None:
        return self._headers

    def timestamp(self) -> tuple[int, int]:
        return (1, 0)

    def error(self) -> None:
        return None


mutated_headers = st.one_of(
    header_lists,
    st.builds(lambda extra: [*good_headers(), *extra], header_lists),  # duplicates of required headers
    st.builds(lambda drop: [h for h in good_headers() if h[0] != drop], st.sampled_from(REQUIRED_HEADERS)),
    st.builds(
        lambda name, value: [(k, value if k == name else v) for k, v in good_headers()],
        st.sampled_from(REQUIRED_HEADERS),
        values,
    ),
    st.just(good_headers(platform="pc")),
    st.none(),
)
record_values = st.one_of(st.none(), st.binary(max_size=300), st.just(b"x" * 5000))
topics = st.sampled_from(["prod.s.ingest.all-v1", "dev.s.ingest.all-v1"])


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(topics, record_values, mutated_headers)
def test_guard_rejects_only_with_a_dlq_reason(topic: str, value: bytes | None, headers: Any) -> None:
    count("record_guard")
    guard = RecordGuard(max_record_bytes=4000)
    try:
        checked = guard.check(topic, value, headers)
    except Rejection as rej:
        assert isinstance(rej.reason, DlqReason) and rej.message
        return
    assert checked["ce_env"] == topic.split(".")[0].encode()


ROUTER = compile_router(load_route_set("""
envs: [prod, dev]
routes:
  - {name: a, match: {title: {glob: "1*"}}, to: {template: "{env}.{source}.{title}.{category}-v{version}"}}
  - {name: b, match: {attribute.platform: pc}, to: {template: "{env}.p.{attribute.platform}.k-v1"},
     dedup: true}
  - {name: c, match: {not: {env: prod}}, to: {topic: dev.x.all.y-v1}}
"""))  # fmt: skip


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(topics, record_values, mutated_headers), min_size=1, max_size=30))
def test_routed_batch_accounts_for_every_record(records: list[tuple[str, bytes | None, Any]]) -> None:
    count("route_batch")
    batch = [FakeRecord(t, i, v, h) for i, (t, v, h) in enumerate(records)]
    routed = route_batch(
        batch, ROUTER, RecordGuard(max_record_bytes=4000), DedupStore(window_s=60, max_ids_per_partition=100)
    )
    outcome = {id(o.record) for o in routed.outputs} | {id(d.record) for d in routed.dead}
    dedup_dropped = sum(routed.counts.deduplicated.values())
    unaccounted = [r for r in batch if id(r) not in outcome]
    # every record went somewhere: outputs, dead letters, unmatched, or dropped as a duplicate id
    assert len(unaccounted) <= routed.counts.unmatched + dedup_dropped
    assert sum(routed.counts.records_in.values()) == len(batch)
    for dead in routed.dead:
        assert isinstance(dead.reason, DlqReason) and dead.message


ENVELOPE = encode_envelope(
    make_envelope(env="prod", source="s", title="1234", category="kill", version=2, schema_id=9,
                  payload_format="avro", payload=b"\x02" * 40, producer="fuzz", attributes={"a": "b"})
)  # fmt: skip


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    st.integers(0, len(ENVELOPE)),
    st.lists(st.tuples(st.integers(0, len(ENVELOPE) - 1), st.integers(0, 255)), max_size=4),
)
def test_truncated_and_corrupted_envelopes_only_raise_envelope_error(
    cut: int, flips: list[tuple[int, int]]
) -> None:
    count("decode_envelope")
    data = bytearray(ENVELOPE)
    for position, byte in flips:
        data[position] = byte
    try:
        envelope = decode_envelope(bytes(data[:cut]))
    except EnvelopeError as exc:
        assert str(exc)
        return
    assert envelope.metadata.message_id


def test_record_fuzz_figures() -> None:
    """Runs last in this module (pytest keeps file order): how many inputs each property saw."""
    assert FUZZED, "the property tests above did not run"
    record_figures("fuzz", **FUZZED)
