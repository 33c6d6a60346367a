"""Render a compiled FileDescriptorProto back into .proto text: the normalized form of a Protobuf schema.

Fully qualified type names (`.pkg.Message`), one declaration per line, declarations in descriptor
order, no comments. Features this printer does not render (editions, groups, `extend` blocks, custom
options) raise UnsupportedProtoError; the caller then keeps the schema text as submitted.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from google.protobuf import descriptor_pb2, text_encoding
from google.protobuf.descriptor_pb2 import FieldDescriptorProto as F
from google.protobuf.message import Message

MAX_FIELD_NUMBER = 536_870_911
SCALAR_NAMES = {
    value: name.removeprefix("TYPE_").lower()
    for name, value in F.Type.items()
    if name not in ("TYPE_MESSAGE", "TYPE_ENUM", "TYPE_GROUP")
}
INDENT = "  "


class UnsupportedProtoError(Exception):
    """The descriptor uses something this printer does not render."""


def print_proto(file: descriptor_pb2.FileDescriptorProto) -> str:
    if file.syntax not in ("proto2", "proto3", ""):
        raise UnsupportedProtoError(f"syntax {file.syntax!r}")
    if file.extension:
        raise UnsupportedProtoError("extend blocks")
    syntax = file.syntax or "proto2"
    lines = [f'syntax = "{syntax}";']
    if file.package:
        lines.append(f"package {file.package};")
    for i, dependency in enumerate(file.dependency):
        modifier = "public " if i in file.public_dependency else "weak " if i in file.weak_dependency else ""
        lines.append(f'import {modifier}"{dependency}";')
    lines.extend(f"option {text};" for text in _options(file.options))
    scope = f".{file.package}" if file.package else ""
    for message in file.message_type:
        lines.extend(_message(message, syntax, 0, scope))
    for enum in file.enum_type:
        lines.extend(_enum(enum, 0))
    for service in file.service:
        lines.extend(_service(service))
    return "\n".join(lines) + "\n"


def _message(message: descriptor_pb2.DescriptorProto, syntax: str, depth: int, scope: str) -> list[str]:
    """`scope` is the fully qualified name of the enclosing package or message, with a leading dot."""
    if message.extension:
        raise UnsupportedProtoError("extend blocks")
    pad = INDENT * (depth + 1)
    lines = [f"{INDENT * depth}message {message.name} {{"]
    lines.extend(f"{pad}option {text};" for text in _options(message.options))
    full_name = f"{scope}.{message.name}"
    map_entries = {f"{full_name}.{n.name}": n for n in message.nested_type if n.options.map_entry}
    synthetic = {f.oneof_index for f in message.field if f.proto3_optional}
    printed_oneofs: set[int] = set()
    for field in message.field:
        in_oneof = field.HasField("oneof_index") and field.oneof_index not in synthetic
        if not in_oneof:
            lines.append(pad + _field(field, syntax, map_entries))
        elif field.oneof_index not in printed_oneofs:
            printed_oneofs.add(field.oneof_index)
            lines.extend(_oneof(message, field.oneof_index, syntax, map_entries, depth + 1))
    for nested in message.nested_type:
        if not nested.options.map_entry:
            lines.extend(_message(nested, syntax, depth + 1, full_name))
    for enum in message.enum_type:
        lines.extend(_enum(enum, depth + 1))
    lines.extend(f"{pad}extensions {text};" for text in _ranges(message.extension_range, exclusive_end=True))
    lines.extend(_reserved(message.reserved_range, message.reserved_name, pad, exclusive_end=True))
    lines.append(f"{INDENT * depth}}}")
    return lines


def _oneof(
    message: descriptor_pb2.DescriptorProto, index: int, syntax: str, map_entries: dict[str, Any], depth: int
) -> list[str]:
    pad = INDENT * depth
    decl = message.oneof_decl[index]
    lines = [f"{pad}oneof {decl.name} {{"]
    lines.extend(f"{pad}{INDENT}option {text};" for text in _options(decl.options))
    for field in message.field:
        if field.HasField("oneof_index") and field.oneof_index == index:
            lines.append(pad + INDENT + _field(field, syntax, map_entries, in_oneof=True))
    lines.append(f"{pad}}}")
    return lines


def _field(field: F, syntax: str, map_entries: dict[str, Any], *, in_oneof: bool = False) -> str:
    if field.type == F.TYPE_GROUP:
        raise UnsupportedProtoError("groups")
    entry = map_entries.get(field.type_name)
    if entry is not None and field.label == F.LABEL_REPEATED:
        key, value = entry.field
        declaration = f"map<{_type(key)}, {_type(value)}> {field.name} = {field.number}"
    else:
        declaration = f"{_label(field, syntax, in_oneof)}{_type(field)} {field.name} = {field.number}"
    extras = []
    if field.HasField("default_value"):
        extras.append(f"default = {_default(field)}")
    if field.HasField("json_name") and field.json_name != _default_json_name(field.name):
        extras.append(f'json_name = "{text_encoding.CEscape(field.json_name, as_utf8=True)}"')
    extras.extend(_options(field.options))
    return declaration + (f" [{', '.join(extras)}]" if extras else "") + ";"


def _label(field: F, syntax: str, in_oneof: bool) -> str:
    if in_oneof:
        return ""
    if field.label == F.LABEL_REPEATED:
        return "repeated "
    if field.label == F.LABEL_REQUIRED:
        return "required "
    return "optional " if syntax == "proto2" or field.proto3_optional else ""


def _type(field: F) -> str:
    if field.type in (F.TYPE_MESSAGE, F.TYPE_ENUM):
        return field.type_name
    return SCALAR_NAMES[field.type]


def _default(field: F) -> str:
    if field.type == F.TYPE_STRING:
        return f'"{text_encoding.CEscape(field.default_value, as_utf8=True)}"'
    if field.type == F.TYPE_BYTES:
        return f'"{field.default_value}"'  # already C-escaped in the descriptor
    return field.default_value


def _default_json_name(name: str) -> str:
    parts = name.split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def _enum(enum: descriptor_pb2.EnumDescriptorProto, depth: int) -> list[str]:
    pad = INDENT * (depth + 1)
    lines = [f"{INDENT * depth}enum {enum.name} {{"]
    lines.extend(f"{pad}option {text};" for text in _options(enum.options))
    for value in enum.value:
        options = _options(value.options)
        suffix = f" [{', '.join(options)}]" if options else ""
        lines.append(f"{pad}{value.name} = {value.number}{suffix};")
    lines.extend(_reserved(enum.reserved_range, enum.reserved_name, pad, exclusive_end=False))
    lines.append(f"{INDENT * depth}}}")
    return lines


def _service(service: descriptor_pb2.ServiceDescriptorProto) -> list[str]:
    lines = [f"service {service.name} {{"]
    lines.extend(f"{INDENT}option {text};" for text in _options(service.options))
    for method in service.method:
        request = ("stream " if method.client_streaming else "") + method.input_type
        response = ("stream " if method.server_streaming else "") + method.output_type
        options = _options(method.options)
        body = " {" + " ".join(f"option {o};" for o in options) + "}" if options else ";"
        lines.append(f"{INDENT}rpc {method.name}({request}) returns ({response}){body}")
    lines.append("}")
    return lines


def _ranges(ranges: Iterable[Any], *, exclusive_end: bool) -> list[str]:
    out = []
    for r in ranges:
        end = r.end - 1 if exclusive_end else r.end
        if end == r.start:
            out.append(str(r.start))
        else:
            out.append(f"{r.start} to {'max' if end >= MAX_FIELD_NUMBER else end}")
    return out


def _reserved(ranges: Iterable[Any], names: Iterable[str], pad: str, *, exclusive_end: bool) -> list[str]:
    lines = [f"{pad}reserved {text};" for text in _ranges(ranges, exclusive_end=exclusive_end)]
    lines.extend(f'{pad}reserved "{name}";' for name in names)
    return lines


def _options(options: Message) -> list[str]:
    """`name = value` for each option set; custom (extension) options are not rendered."""
    out = []
    for descriptor, value in options.ListFields():
        if descriptor.is_extension or descriptor.type == descriptor.TYPE_MESSAGE or descriptor.is_repeated:
            raise UnsupportedProtoError(f"option {descriptor.name}")
        out.append(f"{descriptor.name} = {_option_value(descriptor, value)}")
    return out


def _option_value(descriptor: Any, value: Any) -> str:
    if descriptor.type == descriptor.TYPE_BOOL:
        return "true" if value else "false"
    if descriptor.type == descriptor.TYPE_ENUM:
        return str(descriptor.enum_type.values_by_number[value].name)
    if descriptor.type == descriptor.TYPE_STRING:
        return f'"{text_encoding.CEscape(value, as_utf8=True)}"'
    if descriptor.type == descriptor.TYPE_BYTES:
        return f'"{text_encoding.CEscape(value, as_utf8=False)}"'
    return str(value)
