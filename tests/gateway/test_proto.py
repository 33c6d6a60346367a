"""The committed `proto/gateway_pb2.py` matches `proto/gateway.proto` (`python -m proto.generate`), and the
batch format's field numbers stay frozen."""

from pathlib import Path

from google.protobuf import descriptor_pb2

from proto import gateway_pb2
from proto.generate import compile_protos


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    out = tmp_path / "all.desc"
    compile_protos(tmp_path, descriptor_set=out)
    files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    fresh = next(f for f in files if f.name == "proto/gateway.proto")
    for message in fresh.message_type:  # protoc's descriptor sets carry json_name; generated code does not
        for fld in message.field:
            fld.ClearField("json_name")
        for nested in message.nested_type:
            for fld in nested.field:
                fld.ClearField("json_name")
    committed = descriptor_pb2.FileDescriptorProto.FromString(gateway_pb2.DESCRIPTOR.serialized_pb)
    assert committed == fresh, "proto/gateway_pb2.py is stale: run `python -m proto.generate` and commit"


def test_field_numbers_are_frozen() -> None:
    event = {f.name: f.number for f in gateway_pb2.Event.DESCRIPTOR.fields}
    assert event == {
        "category": 1, "version": 2, "json": 3, "raw": 4, "protobuf": 5, "attributes": 6, "id": 7,
        "client_time_ms": 8, "source": 9, "key": 10, "env": 11, "title": 12,
    }  # fmt: skip
    assert {f.name: f.number for f in gateway_pb2.EventBatch.DESCRIPTOR.fields} == {"events": 1}
