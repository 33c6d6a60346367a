"""The committed `proto/envelope_pb2.py` must match `proto/envelope.proto` (`python -m proto.generate`)."""

from pathlib import Path

from google.protobuf import descriptor_pb2

from proto import envelope_pb2
from proto.generate import compile_protos


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    out = tmp_path / "envelope.desc"
    compile_protos(tmp_path, descriptor_set=out)
    fresh = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]
    # protoc's descriptor sets carry json_name; the copy embedded in generated code does not.
    for message in fresh.message_type:
        for fld in message.field:
            fld.ClearField("json_name")
        for nested in message.nested_type:
            for fld in nested.field:
                fld.ClearField("json_name")
    committed = descriptor_pb2.FileDescriptorProto.FromString(envelope_pb2.DESCRIPTOR.serialized_pb)
    assert committed == fresh, "proto/envelope_pb2.py is stale: run `python -m proto.generate` and commit"


def test_field_numbers_are_frozen() -> None:
    metadata = {f.name: f.number for f in envelope_pb2.Metadata.DESCRIPTOR.fields}
    assert metadata == {
        "message_id": 1,
        "env": 2,
        "source": 3,
        "title": 4,
        "category": 5,
        "version": 6,
        "schema_id": 7,
        "payload_format": 8,
        "produced_at_ms": 9,
        "producer": 10,
        "attributes": 11,
    }
    envelope = {f.name: f.number for f in envelope_pb2.Envelope.DESCRIPTOR.fields}
    assert envelope == {"metadata": 1, "payload": 2}
