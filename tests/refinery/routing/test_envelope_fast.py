"""The compiled envelope fast path (`refinery/routing/envelope_fast.c`): one-sided against the reference.

It may only say True for bytes the reference check (the upb parse and a field-by-field comparison)
accepts for the same headers; False sends a record to the reference, which decides. So: generated and
mangled envelopes never pass here while failing there, and the layouts our producers write do pass here
(otherwise the fast path would buy nothing).
"""

from __future__ import annotations

import os

import pytest
from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st

from proto.envelope_pb2 import Envelope, Metadata
from refinery.routing import guards
from tests.refinery.worker.worker_harness import record

pytestmark = pytest.mark.skipif(
    not guards.COMPILED_ENVELOPE_CHECK and os.environ.get("CI") != "true",
    reason="the compiled envelope check was not built here (needs a C compiler; `pip install -e .`)",
)
VALUES: guards.EnvelopeValues = ("prod", "telemetry", "1234", "match_started", 3, 41, 4)  # 4: raw
MIDDLE = guards._encoded_fields(VALUES)
MESSAGE_ID = "0192b3c4-d5e6-7f80-9a1b-2c3d4e5f6a7b"


def fast(value: bytes | None, message_id: bytes = MESSAGE_ID.encode(), middle: bytes | None = MIDDLE) -> bool:
    assert guards._canonical_envelope is not None and middle is not None
    return bool(guards._canonical_envelope(value, message_id, middle))


def reference_accepts(value: bytes, message_id: bytes = MESSAGE_ID.encode()) -> bool:
    """What the guard's parse path concludes for headers carrying VALUES and `message_id`."""
    try:
        md = Envelope.FromString(value).metadata
    except DecodeError:
        return False
    found = (md.env, md.source, md.title, md.category, md.version, md.schema_id, md.payload_format)
    return found == VALUES and md.message_id.encode() == message_id


def envelope(
    *,
    payload: bytes = b"p" * 300,
    producer: str = "game-server-eu-1/sdk-0.1.0",
    attributes: dict[str, str] | None = None,
    produced_at_ms: int = 1_764_500_000_123,
    message_id: str = MESSAGE_ID,
) -> bytes:
    env, source, title, category, version, schema_id, _ = VALUES
    value, _ = record(
        env, source, title, category, version=version, schema_id=schema_id, attributes=attributes,
        payload=payload, message_id=message_id, producer=producer, produced_at_ms=produced_at_ms,
    )  # fmt: skip
    return value


def test_it_is_built_where_ci_runs() -> None:
    # scripts/setup.sh installs the package, which compiles it; CI must measure what production runs
    assert guards.COMPILED_ENVELOPE_CHECK


@pytest.mark.parametrize(
    "value",
    [
        envelope(),
        envelope(payload=b""),  # an empty payload is not written at all
        envelope(payload=b"x" * 20_000, attributes={"platform": "pc", "region": "eu"}),
        envelope(producer="", produced_at_ms=0),  # defaults are not written either
        envelope(produced_at_ms=-1),  # a 10-byte varint
    ],
)
def test_what_our_producers_write_takes_the_fast_path(value: bytes) -> None:
    assert reference_accepts(value)
    assert fast(value)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (envelope(producer="serveur-é"), "non-ASCII text: the reference checks its UTF-8"),
        (envelope(attributes={"zone": "南"}), "non-ASCII attribute"),
        (envelope() + b"\x1a\x00", "an unknown field after the payload"),
    ],
)
def test_valid_but_unusual_envelopes_go_to_the_reference(value: bytes, why: str) -> None:
    assert reference_accepts(value), why
    assert not fast(value), why


def test_other_headers_or_broken_bytes_never_pass() -> None:
    value = envelope()
    assert not fast(value, message_id=b"0192b3c4-d5e6-7f80-9a1b-2c3d4e5f6a7c")
    other = guards._encoded_fields(("prod", "telemetry", "1234", "match_started", 4, 41, 4))
    assert not fast(value, middle=other)
    passing = [cut for cut in range(len(value)) if fast(value[:cut])]
    assert passing == [len(value) - 303]  # cut before the payload field: a valid envelope without payload
    assert reference_accepts(value[: passing[0]])
    assert not fast(None) and not fast(b"")


def test_arguments_of_other_types_are_left_to_the_reference() -> None:
    assert guards._canonical_envelope is not None
    assert guards._canonical_envelope(envelope(), MESSAGE_ID, MIDDLE) is False  # a str id
    assert guards._canonical_envelope(bytearray(envelope()), MESSAGE_ID.encode(), MIDDLE) is False


text = st.text(max_size=12)
metadata_fields = st.fixed_dictionaries(
    {
        "message_id": st.sampled_from([MESSAGE_ID, "", "other-id", MESSAGE_ID + "é"]),
        "env": st.sampled_from(["prod", "dev", ""]),
        "source": st.sampled_from(["telemetry", "backend"]),
        "title": st.sampled_from(["1234", "99"]),
        "category": st.sampled_from(["match_started", "x"]),
        "version": st.sampled_from([3, 0, 4]),
        "schema_id": st.sampled_from([41, -1, 0]),
        "payload_format": st.sampled_from([4, 0, 1, 7]),
        "produced_at_ms": st.integers(-(2**63), 2**63 - 1),
        "producer": text,
        "attributes": st.dictionaries(text, text, max_size=3),
    }
)


def _fields_in_some_order(fields: dict, order: list[int]) -> bytes:
    """Metadata written one field at a time, in `order` (fields may repeat or be left out)."""
    names = list(fields)
    out = b""
    for index in order:
        name = names[index]
        single = Metadata()
        if name == "attributes":
            single.attributes.update(fields[name])
        else:
            setattr(single, name, fields[name])
        out += single.SerializeToString(deterministic=True)
    return out


def _framed(metadata: bytes, payload: bytes) -> bytes:
    """An envelope holding exactly these metadata bytes (not re-serialized), then the payload field."""
    return b"\x0a" + _varint(len(metadata)) + metadata + Envelope(payload=payload).SerializeToString()


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


@settings(max_examples=400, deadline=None)
@given(
    metadata_fields,
    st.lists(st.integers(0, 10), max_size=14),
    st.binary(max_size=64),
    st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=3),
    st.integers(0, 3),
)
def test_the_fast_path_never_accepts_what_the_reference_refuses(
    fields: dict, order: list[int], payload: bytes, flips: list[tuple[int, int]], trim: int
) -> None:
    value = bytearray(_framed(_fields_in_some_order(fields, order or list(range(11))), payload))
    for position, byte in flips:
        if value:
            value[position % len(value)] = byte
    data = bytes(value[: len(value) - trim] if trim else value)
    if fast(data):
        assert reference_accepts(data), data.hex()


@settings(max_examples=300, deadline=None)
@given(metadata_fields, st.binary(max_size=64))
def test_on_the_canonical_layout_with_ascii_text_both_agree(fields: dict, payload: bytes) -> None:
    texts = [fields["producer"], fields["message_id"], *fields["attributes"], *fields["attributes"].values()]
    if not all(t.isascii() for t in texts):
        return
    data = _framed(_fields_in_some_order(fields, list(range(11))), payload)
    assert fast(data) == reference_accepts(data), data.hex()
