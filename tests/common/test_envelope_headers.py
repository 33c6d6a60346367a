import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.envelope import decode_envelope, encode_envelope, make_envelope, new_message_id
from common.errors import EnvelopeError, HeaderError, InvalidInputError
from common.headers import (
    ENV,
    MESSAGE_ID,
    VERSION,
    format_time,
    header_mismatches,
    headers_dict,
    headers_to_metadata,
    metadata_to_headers,
    parse_time,
)

component = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=20)
attr_value = st.text(max_size=30)


def sample(**overrides):
    fields = dict(
        env="prod",
        source="telemetry",
        title="1234",
        category="match_started",
        version=2,
        schema_id=7,
        payload_format="avro",
        payload=b"\x00\x01payload",
        producer="gs-eu-1",
        attributes={"platform": "pc"},
    )
    fields.update(overrides)
    return make_envelope(**fields)


def test_message_ids_are_unique_and_time_sortable() -> None:
    ids = [new_message_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)


def test_encode_decode_round_trip() -> None:
    envelope = sample()
    assert decode_envelope(encode_envelope(envelope)) == envelope


@given(
    env=component,
    source=component,
    title=component,
    category=component,
    version=st.integers(1, 2**32 - 1),
    schema_id=st.integers(1, 2**31 - 1),
    fmt=st.sampled_from(["avro", "protobuf", "json", "raw"]),
    produced=st.integers(0, 253402300799999),
    attrs=st.dictionaries(component, attr_value, max_size=4),
    producer=st.text(max_size=30),
)
def test_headers_round_trip(
    env, source, title, category, version, schema_id, fmt, produced, attrs, producer
) -> None:
    envelope = make_envelope(
        env=env,
        source=source,
        title=title,
        category=category,
        version=version,
        schema_id=schema_id,
        payload_format=fmt,
        payload=b"",
        producer=producer,
        attributes=attrs,
        produced_at_ms=produced,
    )
    headers = metadata_to_headers(envelope.metadata)
    assert headers_to_metadata(headers) == envelope.metadata
    assert header_mismatches(headers, envelope) == []


def test_time_format_is_rfc3339_millis() -> None:
    assert format_time(1_700_000_000_123) == "2023-11-14T22:13:20.123Z"
    assert parse_time("2023-11-14T22:13:20.123Z") == 1_700_000_000_123
    assert parse_time("2023-11-14T23:13:20.123+01:00") == 1_700_000_000_123


def test_mismatch_is_reported() -> None:
    envelope = sample()
    headers = [(k, b"dev" if k == ENV else v) for k, v in metadata_to_headers(envelope.metadata)]
    assert header_mismatches(headers, envelope) == ["env"]


@pytest.mark.parametrize(
    ("mutate", "header"),
    [
        (lambda h: [x for x in h if x[0] != ENV], ENV),
        (lambda h: [*h, (ENV, b"prod")], ENV),
        (lambda h: [(k, b"abc" if k == VERSION else v) for k, v in h], VERSION),
        (lambda h: [(k, b"\xff\xfe" if k == MESSAGE_ID else v) for k, v in h], MESSAGE_ID),
    ],
)
def test_bad_headers_name_the_header(mutate, header) -> None:
    headers = mutate(metadata_to_headers(sample().metadata))
    with pytest.raises(HeaderError) as info:
        headers_to_metadata(headers)
    assert info.value.header == header


def test_header_with_invalid_component_is_rejected() -> None:
    headers = [(k, b"pr.od" if k == ENV else v) for k, v in metadata_to_headers(sample().metadata)]
    with pytest.raises(HeaderError, match="env"):
        headers_to_metadata(headers)


def test_headers_dict_accepts_none_values() -> None:
    assert headers_dict([("a", None)]) == {"a": b""}
    assert headers_dict(None) == {}


@pytest.mark.parametrize("data", [b"", b"\xff" * 10, b"\x0a\x02\x08", None])
def test_decode_rejects_garbage(data) -> None:
    with pytest.raises(EnvelopeError):
        decode_envelope(data)


@given(st.binary(max_size=512))
def test_decode_arbitrary_bytes_only_raises_envelope_error(data: bytes) -> None:
    try:
        envelope = decode_envelope(data)
    except EnvelopeError:
        return
    assert envelope.metadata.message_id


@pytest.mark.parametrize(
    "overrides",
    [{"env": ""}, {"title": "a.b"}, {"version": 0}, {"schema_id": 0}, {"payload_format": "xml"}],
)
def test_make_envelope_validates(overrides) -> None:
    with pytest.raises(InvalidInputError):
        sample(**overrides)
