"""Turn Protobuf schema text (a `.proto` file as stored in the registry) into descriptors and classes.

The registry stores `.proto` source. To check a message object against it, and to decode payloads by
schema id, we compile the text with protoc (bundled in grpcio-tools, run in-process) into a
FileDescriptorSet and build classes in a private descriptor pool per schema. The payload type of a schema
is its FIRST top-level message (Confluent's default message index `[0]`), because our envelope carries
the bare message without Confluent's message-index prefix.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc_tools
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message
from grpc_tools import protoc

from common.errors import InvalidInputError

_WELL_KNOWN_INCLUDE = str(Path(grpc_tools.__file__).parent / "_proto")
_SCHEMA_FILE = "schema.proto"


class ProtobufSchemaError(InvalidInputError):
    """Protobuf schema text that protoc cannot compile."""


@dataclass(frozen=True)
class CompiledProto:
    """A compiled schema: its payload message class and the full names of all its messages."""

    message_class: type[Message]
    message_names: frozenset[str]

    @property
    def full_name(self) -> str:
        return self.message_class.DESCRIPTOR.full_name


def _descriptor_set(schema_text: str, dependencies: Sequence[tuple[str, str]] = ()) -> bytes:
    with tempfile.TemporaryDirectory(prefix="refinery-proto-") as tmp:
        root = Path(tmp)
        (root / _SCHEMA_FILE).write_text(schema_text, encoding="utf-8")
        for name, text in dependencies:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text, encoding="utf-8")
        out = root / "out.pb"
        code = protoc.main(
            [
                "protoc",
                f"-I{root}",
                f"-I{_WELL_KNOWN_INCLUDE}",
                "--include_imports",
                f"--descriptor_set_out={out}",
                _SCHEMA_FILE,
            ]
        )
        if code != 0 or not out.exists():
            raise ProtobufSchemaError(
                "protoc could not compile the Protobuf schema (details on stderr); fix the .proto text"
            )
        return out.read_bytes()


def _names(prefix: str, messages: Sequence[descriptor_pb2.DescriptorProto]) -> set[str]:
    out: set[str] = set()
    for msg in messages:
        full = f"{prefix}.{msg.name}" if prefix else msg.name
        out.add(full)
        out |= _names(full, msg.nested_type)
    return out


def compile_proto(schema_text: str, dependencies: Sequence[tuple[str, str]] = ()) -> CompiledProto:
    """Compile `.proto` text (plus imported files as (name, text)) and return its payload message class."""
    files = descriptor_pb2.FileDescriptorSet.FromString(_descriptor_set(schema_text, dependencies))
    pool = descriptor_pool.DescriptorPool()
    main: descriptor_pb2.FileDescriptorProto | None = None
    for file_proto in files.file:  # dependencies come first in a descriptor set
        pool.Add(file_proto)
        if file_proto.name == _SCHEMA_FILE:
            main = file_proto
    if main is None or not main.message_type:
        raise ProtobufSchemaError("the Protobuf schema declares no message")
    first = f"{main.package}.{main.message_type[0].name}" if main.package else main.message_type[0].name
    descriptor: Descriptor = pool.FindMessageTypeByName(first)
    return CompiledProto(
        message_class=message_factory.GetMessageClass(descriptor),
        message_names=frozenset(_names(main.package, main.message_type)),
    )


def field_signature(descriptor: Descriptor) -> dict[str, tuple[int, int, str]]:
    """name -> (number, type, type name) of a message's fields: equal signatures mean same wire format."""
    return {
        f.name: (f.number, f.type, f.message_type.full_name if f.message_type else "")
        for f in descriptor.fields
    }
