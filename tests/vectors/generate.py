"""Write the golden vectors of the envelope contract to `tests/vectors/envelopes.json`.

    .venv/bin/python -m tests.vectors.generate          # rewrite the file
    .venv/bin/python -m tests.vectors.generate --check  # exit 1 if the file is stale

Language-neutral JSON (no Python types): for each envelope vector, the metadata and payload a producer
is given, and what it must produce: the envelope bytes (hex), the headers in order, the ingest topic,
the partition of the key among 12 partitions (-1: no key, any partition) and the record size the size
limit counts. Then header values with the rule they break (or none), keys with their murmur2 hash and
partition, and attribute names. Everything is computed by the Python implementation (`common.envelope`,
`common.headers`, `common.contract`, `common.limits`); every SDK's tests read this file, and
`tests/vectors/test_vectors.py` checks the file is what this script writes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from common import contract
from common.envelope import encode_envelope, make_envelope
from common.headers import metadata_to_headers
from common.limits import HEADER_FRAMING_BYTES, RECORD_FRAMING_BYTES, record_size
from common.topics import ingest_topic
from producers.codecs import encode_payload
from producers.schemas import parse_schema

PATH = Path(__file__).with_name("envelopes.json")

KILL_AVRO = json.dumps(
    {
        "type": "record",
        "name": "Kill",
        "namespace": "vectors",
        "fields": [{"name": "match_id", "type": "string"}, {"name": "kills", "type": "int"}],
    }
)
PURCHASE_JSON = json.dumps(
    {
        "type": "object",
        "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}},
        "required": ["sku", "qty"],
    }
)
KILL_PROTO = (
    'syntax = "proto3";\npackage vectors;\nmessage Kill {\n  string match_id = 1;\n  int32 kills = 2;\n}\n'
)
# Structured payloads: (schema type, schema text, value); the payload is the SDK's encoding of the value.
Structured = tuple[str, str, dict[str, Any]]

# (name, metadata, payload, key): inputs chosen to cover every field, map ordering, UTF-8, the integer
# bounds, empty payload and key, and a payload long enough for multi-byte length prefixes.
ENVELOPES: list[tuple[str, dict[str, Any], bytes | Structured, bytes | None]] = [
    ("minimal-raw-no-key", {
        "message_id": "019b7a3e-5c1d-7c3a-9f2e-3b4c5d6e7f80", "env": "dev", "source": "telemetry",
        "title": "1234", "category": "match_started", "version": 1, "schema_id": 1,
        "payload_format": "raw", "produced_at_ms": 1767225600123, "producer": "gs-eu-1/4242",
        "attributes": {},
    }, b"\x00\x01\x02", None),
    ("avro-keyed-with-attributes", {
        "message_id": "019b7a3e-5c1d-7c3a-9f2e-3b4c5d6e7f81", "env": "prod", "source": "telemetry",
        "title": "1234", "category": "player_killed", "version": 2, "schema_id": 7,
        "payload_format": "avro", "produced_at_ms": 1767225601000, "producer": "game-server-eu-1/sdk-cpp",
        "attributes": {"region": "eu-west", "platform": "pc"},
    }, ("AVRO", KILL_AVRO, {"match_id": "m-1", "kills": 1}), b"m-1"),
    ("json-unicode-attributes-sorted", {
        "message_id": "019b7a3e-5c1d-7c3a-9f2e-3b4c5d6e7f82", "env": "dev", "source": "backend",
        "title": "ttl_99-x", "category": "purchase", "version": 3, "schema_id": 42,
        "payload_format": "json", "produced_at_ms": 1767225602999, "producer": "shop/ü",
        "attributes": {"z.last": "", "a_first": "ünïcode ✓", "M-mid": "x"},
    }, ("JSON", PURCHASE_JSON, {"sku": "ä€", "qty": 1}), "player-ü".encode()),
    ("protobuf-integer-bounds-binary-key", {
        "message_id": "019b7a3e-5c1d-7c3a-9f2e-3b4c5d6e7f83", "env": "prod", "source": "backend",
        "title": "9", "category": "c", "version": contract.MAX_VERSION, "schema_id": contract.MAX_SCHEMA_ID,
        "payload_format": "protobuf", "produced_at_ms": 4102444800000, "producer": "p",
        "attributes": {"platform": "ps5"},
    }, ("PROTOBUF", KILL_PROTO, {"match_id": "m-1", "kills": 1}), b"\x00\xff\x10\x80"),
    ("empty-payload-empty-key", {
        "message_id": "019b7a3e-5c1d-7c3a-9f2e-3b4c5d6e7f84", "env": "qa", "source": "tools",
        "title": "0123", "category": "heartbeat", "version": 10, "schema_id": 100,
        "payload_format": "raw", "produced_at_ms": 1700000000000, "producer": "qa-tool",
        "attributes": {},
    }, b"", b""),
    ("long-payload", {
        "message_id": "019b7a3e-5c1d-7c3a-9f2e-3b4c5d6e7f85", "env": "prod", "source": "telemetry",
        "title": "1234", "category": "crash_report", "version": 1, "schema_id": 3,
        "payload_format": "raw", "produced_at_ms": 1767225603456, "producer": "gs-us-2/99",
        "attributes": {"build": "1.2.3"},
    }, bytes(i % 251 for i in range(20_000)), b"match-0000000000000000000000000000000000042"),
]  # fmt: skip

# (header, value): every value rule, on both sides of each boundary.
HEADER_VALUES: list[tuple[str, bytes]] = [
    *((contract.VERSION, v) for v in (b"1", b"42", b"4294967295", b"01", b"0", b"-1", b"+1", b" 1", b"1 ",
                                      b"1.0", b"4294967296", b"99999999999", "\u0661".encode(), b"0x1")),
    *((contract.SCHEMA_ID, v) for v in (b"1", b"2147483647", b"2147483648", b"007")),
    *((contract.ENV, v) for v in (b"prod", b"a-b_C9", b"pr.od", b"prod env", "prüd".encode(), b"\xff\xfe")),
    *((contract.SOURCE, v) for v in (b"telemetry", b"tele/metry")),
    *((contract.TITLE, v) for v in (b"0123", b"1234", b"12:34", b"1234\n")),
    *((contract.CATEGORY, v) for v in (b"player_killed", b"player.killed")),
    *((contract.FORMAT, v) for v in (b"avro", b"protobuf", b"json", b"raw", b"AVRO", b"unspecified")),
    *((contract.MESSAGE_ID, v) for v in (b"019b7a3e-5c1d-7c3a-9f2e-3b4c5d6e7f80", b"x" * 200, b"x" * 201)),
]  # fmt: skip

KEYS: list[bytes] = [
    b"", b"a", b"21", b"abc", b"m-1", b"foobar", b"12345", "player-ü".encode(), b"\x00\xff\x10\x80",
    b"a-little-bit-long-string", b"a-little-bit-longer-string",
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", bytes(range(100)),
    *(f"match-{n}".encode() for n in range(24)),
]  # fmt: skip

ATTRIBUTE_NAMES = ["platform", "a.b-c_D9", "", "with space", "plätform", "x=y", "platform\n"]


def envelope_vector(
    name: str, md: dict[str, Any], given: bytes | Structured, key: bytes | None
) -> dict[str, Any]:
    structured: dict[str, Any] = {}
    if isinstance(given, bytes):
        payload = given
    else:
        schema_type, text, value = given
        payload_format, payload = encode_payload(value, parse_schema(md["schema_id"], text, schema_type))
        assert payload_format == md["payload_format"], name
        structured = {"schema_type": schema_type, "schema": text, "payload_json": json.dumps(value)}
    envelope = make_envelope(**{**md, "payload": payload})
    value = encode_envelope(envelope)
    headers = metadata_to_headers(envelope.metadata)
    return {
        "name": name,
        "metadata": md,
        "payload_hex": payload.hex(),
        **structured,
        "has_key": key is not None,
        "key_hex": (key or b"").hex(),
        "envelope_hex": value.hex(),
        "headers": [{"name": k, "value": v.decode() if isinstance(v, bytes) else v} for k, v in headers],
        "ingest_topic": ingest_topic(md["env"], md["source"]),
        "partition": -1 if key is None else contract.partition_for_key(key, contract.INGEST_PARTITIONS),
        "record_size": record_size(key, value, headers),
    }


def vectors() -> dict[str, Any]:
    header_cases = []
    for name, value in HEADER_VALUES:
        problem = contract.header_problem(name, value)
        header_cases.append({"header": name, "value_hex": value.hex(), "valid": problem is None,
                             "rule": problem[0] if problem else ""})  # fmt: skip
    return {
        "contract_version": contract.CONTRACT_VERSION,
        "generated_by": "python -m tests.vectors.generate (docs/contract.md)",
        "ingest_partitions": contract.INGEST_PARTITIONS,
        "partitioner": contract.PARTITIONER,
        "max_record_bytes": contract.MAX_RECORD_BYTES,
        "record_framing_bytes": RECORD_FRAMING_BYTES,
        "header_framing_bytes": HEADER_FRAMING_BYTES,
        "envelopes": [envelope_vector(*item) for item in ENVELOPES],
        "header_values": header_cases,
        "keys": [
            {
                "key_hex": k.hex(),
                "murmur2": contract.murmur2(k),
                "partition": contract.partition_for_key(k, contract.INGEST_PARTITIONS),
            }
            for k in KEYS
        ],
        "attribute_names": [
            {"name": n, "valid": contract.attribute_name_problem(n) is None} for n in ATTRIBUTE_NAMES
        ],
    }


def render() -> str:
    return json.dumps(vectors(), indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.vectors.generate", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the file differs from what we'd write"
    )
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        stale = not PATH.exists() or PATH.read_text(encoding="utf-8") != text
        if stale:
            print(f"{PATH} is stale: run python -m tests.vectors.generate", file=sys.stderr)
        return 1 if stale else 0
    PATH.write_text(text, encoding="utf-8")
    print(f"wrote {PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
