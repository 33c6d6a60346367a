"""Protobuf compatibility, following the rules Confluent's Schema Registry applies to .proto files.

Protobuf data carries field numbers, not names, so the check compares two compiled descriptors (the
writer's as "original", the reader's as "update", as Confluent's SchemaDiff does) message by message
(by name, nested types recursively) and field by field (by number). Incompatible, reported with
Confluent's difference names:

- PACKAGE_CHANGED: the file's package differs.
- MESSAGE_REMOVED: a message type (top-level or nested, map entries aside) the writer has is gone.
- FIELD_KIND_CHANGED: a field number changes between scalar/enum, message and map.
- FIELD_SCALAR_KIND_CHANGED: a scalar leaves its wire-compatible group. The groups are
  {int32, int64, uint32, uint64, bool, enums}, {sint32, sint64}, {string, bytes}, {fixed32, sfixed32},
  {fixed64, sfixed64}, {float}, {double}.
- FIELD_NAMED_TYPE_CHANGED: a message-typed field names another message (compared without package),
  or the same-named message changed incompatibly (the nested differences are reported as well).
- FIELD_NUMERIC_LABEL_CHANGED: singular <-> repeated for a number-encoded field; the same change is
  compatible for string, bytes and message fields (FIELD_STRING_OR_BYTES_LABEL_CHANGED).
- REQUIRED_FIELD_ADDED / REQUIRED_FIELD_REMOVED: a proto2 `required` field appears or disappears.
- ONEOF_FIELD_REMOVED: a field number leaves a oneof and the message altogether.
- MULTIPLE_FIELDS_MOVED_TO_ONEOF: several existing fields are moved into one oneof.
- FIELD_MOVED_TO_EXISTING_ONEOF: an existing field is moved into a oneof that already had members.

Compatible (not reported): adding or removing optional fields and oneofs, adding fields to a oneof,
renaming fields, adding messages, adding/removing/renumbering enum values and enum types, moving or
reordering messages, changing syntax, services and options. Proto3 `optional` (a synthetic oneof) counts
as a plain field. Paths look like Confluent's: `#/Message/Nested/3` (3 = field number).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from schema_registry.formats.protobuf import ProtobufSchema
from schema_registry.formats.types import ProblemLog

_T = FieldDescriptor
SCALAR_GROUPS = {
    _T.TYPE_INT32: "varint",
    _T.TYPE_INT64: "varint",
    _T.TYPE_UINT32: "varint",
    _T.TYPE_UINT64: "varint",
    _T.TYPE_BOOL: "varint",
    _T.TYPE_ENUM: "varint",
    _T.TYPE_SINT32: "zigzag",
    _T.TYPE_SINT64: "zigzag",
    _T.TYPE_STRING: "length-delimited",
    _T.TYPE_BYTES: "length-delimited",
    _T.TYPE_FIXED32: "fixed32",
    _T.TYPE_SFIXED32: "fixed32",
    _T.TYPE_FIXED64: "fixed64",
    _T.TYPE_SFIXED64: "fixed64",
    _T.TYPE_FLOAT: "float",
    _T.TYPE_DOUBLE: "double",
}
TYPE_NAMES = {
    value: name.removeprefix("TYPE_").lower()
    for name, value in vars(FieldDescriptor).items()
    if name.startswith("TYPE_") and isinstance(value, int)
}


def protobuf_incompatibilities(
    reader: ProtobufSchema, writer: ProtobufSchema, roles: tuple[str, str]
) -> list[str]:
    """Messages for every change that stops `reader` decoding `writer` data; [] when compatible."""
    diff = _Diff(roles)
    if reader.file.package != writer.file.package:
        diff.report(
            "PACKAGE_CHANGED",
            "#/",
            f"package is {writer.file.package!r} in {{writer}} but {reader.file.package!r} in {{reader}}",
        )
    diff.types(writer.file.message_types_by_name, reader.file.message_types_by_name, "#/")
    return list(dict.fromkeys(diff.problems))


@dataclass
class _Diff(ProblemLog):
    roles: tuple[str, str]
    problems: list[str] = field(default_factory=list)
    in_progress: set[tuple[str, str]] = field(default_factory=set)

    def types(self, original: Any, update: Any, path: str) -> None:
        """Compare two name -> message Descriptor mappings (a file's or a message's nested types)."""
        for name, message in original.items():
            if message.GetOptions().map_entry:
                continue
            if name not in update:
                self.report("MESSAGE_REMOVED", f"{path}{name}", f"message {name!r} of {{writer}} is missing")
            else:
                self.message(message, update[name], f"{path}{name}/")

    def message(self, original: Descriptor, update: Descriptor, path: str) -> None:
        pair = (original.full_name, update.full_name)
        if pair in self.in_progress:
            return
        self.in_progress.add(pair)
        original_oneof = _real_oneofs(original)
        original_fields = {f.number: f for f in original.fields}
        update_fields = {f.number: f for f in update.fields}
        self.oneof_moves(original, update, path)
        for number, before in sorted(original_fields.items()):
            after = update_fields.get(number)
            where = f"{path}{number}"
            if after is None:
                if before.is_required:
                    self.report(
                        "REQUIRED_FIELD_REMOVED", where, f"required field {before.name!r} was removed"
                    )
                elif number in original_oneof:
                    self.report(
                        "ONEOF_FIELD_REMOVED",
                        where,
                        f"field {before.name!r} of oneof {original_oneof[number]!r} was removed",
                    )
            else:
                self.field(before, after, where)
        for number, after in sorted(update_fields.items()):
            if number not in original_fields and after.is_required:
                self.report(
                    "REQUIRED_FIELD_ADDED", f"{path}{number}", f"required field {after.name!r} was added"
                )
        self.types(original.nested_types_by_name, update.nested_types_by_name, path)
        self.in_progress.discard(pair)

    def oneof_moves(self, original: Descriptor, update: Descriptor, path: str) -> None:
        """Fields moved into a oneof: one existing field may become a new oneof, no more."""
        original_oneof, update_oneof = _real_oneofs(original), _real_oneofs(update)
        original_plain = {f.number for f in original.fields} - set(original_oneof)
        members: dict[str, list[int]] = {}
        for number, name in sorted(update_oneof.items()):
            members.setdefault(name, []).append(number)
        for name, numbers in members.items():
            moved = [n for n in numbers if n in original_plain]
            existing = [n for n in numbers if n in original_oneof]
            if len(moved) > 1:
                self.report(
                    "MULTIPLE_FIELDS_MOVED_TO_ONEOF",
                    f"{path}{name}",
                    f"fields {moved} of {{writer}} are moved together into oneof {name!r} in {{reader}}",
                )
            elif moved and existing:
                self.report(
                    "FIELD_MOVED_TO_EXISTING_ONEOF",
                    f"{path}{name}",
                    f"field {moved[0]} of {{writer}} is moved into oneof {name!r}, "
                    f"which already had fields {existing}",
                )

    def field(self, before: FieldDescriptor, after: FieldDescriptor, path: str) -> None:
        """One field number present on both sides: kinds, scalar groups, named types, labels."""
        before_kind, after_kind = _kind(before), _kind(after)
        if before_kind != after_kind:
            self.report(
                "FIELD_KIND_CHANGED",
                path,
                f"field {before.name!r} is a {before_kind} in {{writer}} but {after.name!r} is a "
                f"{after_kind} in {{reader}}",
            )
            return
        if before_kind == "map":
            for part in ("key", "value"):
                self.value_types(
                    before.message_type.fields_by_name[part],
                    after.message_type.fields_by_name[part],
                    f"{path}/{part}",
                )
            return
        if before.is_repeated != after.is_repeated and _wire_group(before) != "length-delimited":
            self.report(
                "FIELD_NUMERIC_LABEL_CHANGED",
                path,
                f"field {before.name!r} is {_label(before)} in {{writer}} but {_label(after)} in {{reader}}",
            )
        self.value_types(before, after, path)

    def value_types(self, before: FieldDescriptor, after: FieldDescriptor, path: str) -> None:
        if _kind(before) != _kind(after):
            self.report(
                "FIELD_KIND_CHANGED",
                path,
                f"{_kind(before)} in {{writer}} became {_kind(after)} in {{reader}}",
            )
        elif _kind(before) == "scalar":
            if _wire_group(before) != _wire_group(after):
                self.report(
                    "FIELD_SCALAR_KIND_CHANGED",
                    path,
                    f"field {before.name!r} has type {_type_name(before)} in {{writer}} but "
                    f"{_type_name(after)} in {{reader}}, which is not wire-compatible",
                )
        else:
            self.named_types(before.message_type, after.message_type, path)

    def named_types(self, before: Descriptor, after: Descriptor, path: str) -> None:
        before_name, after_name = _local_name(before), _local_name(after)
        if before_name != after_name:
            self.report(
                "FIELD_NAMED_TYPE_CHANGED",
                path,
                f"message type {before_name!r} in {{writer}} became {after_name!r} in {{reader}}",
            )
            return
        nested = _Diff(self.roles, in_progress=self.in_progress)
        nested.message(before, after, f"#/{before_name.replace('.', '/')}/")
        if nested.problems:
            self.problems.extend(nested.problems)
            self.report(
                "FIELD_NAMED_TYPE_CHANGED", path, f"message type {before_name!r} changed incompatibly"
            )


def _real_oneofs(message: Descriptor) -> dict[int, str]:
    """field number -> oneof name, for oneofs written in the schema (not proto3 `optional`'s)."""
    proto = descriptor_pb2.DescriptorProto()
    message.CopyToProto(proto)
    synthetic = {f.oneof_index for f in proto.field if f.proto3_optional}
    return {
        f.number: proto.oneof_decl[f.oneof_index].name
        for f in proto.field
        if f.HasField("oneof_index") and f.oneof_index not in synthetic
    }


def _kind(f: FieldDescriptor) -> str:
    if f.type in (_T.TYPE_MESSAGE, _T.TYPE_GROUP):
        return "map" if f.message_type.GetOptions().map_entry else "message"
    return "scalar"


def _wire_group(f: FieldDescriptor) -> str:
    return SCALAR_GROUPS.get(f.type, "length-delimited")


def _type_name(f: FieldDescriptor) -> str:
    return f.enum_type.full_name if f.type == _T.TYPE_ENUM else TYPE_NAMES.get(f.type, str(f.type))


def _label(f: FieldDescriptor) -> str:
    return "repeated" if f.is_repeated else "singular"


def _local_name(message: Descriptor) -> str:
    package = message.file.package
    return message.full_name.removeprefix(f"{package}.") if package else message.full_name
