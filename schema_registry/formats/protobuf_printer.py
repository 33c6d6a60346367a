"""Render a compiled FileDescriptorProto as .proto text, in Confluent's canonical layout.

The layout is Confluent's `ProtobufSchemaUtils.toString`: `syntax` and `package`, a blank line before the
imports, the file options and the types; in a message: reserved ranges, options, fields, oneofs, groups,
extension ranges, nested `extend` blocks, then nested messages and enums (messages first). Type names are
fully qualified (`.pkg.Message`), as in Confluent's normalized form, because a descriptor only has those.
Comments are not kept (a descriptor has none). `normalize=True` sorts what Confluent's normalize sorts:
options by name, imports, fields and enum values by number, reserved and extension ranges.

Custom options are rendered when a DescriptorPool that defines them is given (`(.pkg.option) = value`,
message values as `{ field: value }`); options the pool cannot decode, editions and anything else this
printer cannot render raise UnsupportedProtoError, and the caller keeps the submitted text.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_encoding, unknown_fields
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.descriptor_pb2 import FieldDescriptorProto as F
from google.protobuf.message import DecodeError, Message

MAX_FIELD_NUMBER = 536_870_911
SCALAR_NAMES = {
    value: name.removeprefix("TYPE_").lower()
    for name, value in F.Type.items()
    if name not in ("TYPE_MESSAGE", "TYPE_ENUM", "TYPE_GROUP")
}
INDENT = "  "


class UnsupportedProtoError(Exception):
    """The descriptor uses something this printer does not render."""


def print_proto(
    file: descriptor_pb2.FileDescriptorProto,
    pool: descriptor_pool.DescriptorPool | None = None,
    *,
    normalize: bool = False,
) -> str:
    """The .proto text of `file`; `pool` (holding `file`'s dependencies) decodes custom options."""
    return _Printer(pool, normalize).file(file)


def _indented(lines: Iterable[str]) -> list[str]:
    """Each line (or line of a multi-line entry) two spaces in; blank lines stay empty."""
    return [INDENT + line if line else "" for entry in lines for line in entry.split("\n")]


class _Printer:
    def __init__(self, pool: descriptor_pool.DescriptorPool | None, normalize: bool) -> None:
        self.pool = pool
        self.normalize = normalize

    # --- file ---------------------------------------------------------------------------------------

    def file(self, file: descriptor_pb2.FileDescriptorProto) -> str:
        if file.syntax not in ("proto2", "proto3", ""):
            raise UnsupportedProtoError(f"syntax {file.syntax!r}")
        syntax = file.syntax or "proto2"
        lines = [f'syntax = "{syntax}";']
        if file.package:
            lines.append(f"package {file.package};")
        imports = []
        for i, dependency in enumerate(file.dependency):
            modifier = (
                "public " if i in file.public_dependency else "weak " if i in file.weak_dependency else ""
            )
            imports.append(f'import {modifier}"{dependency}";')
        if imports:
            lines.append("")
            lines.extend(sorted(set(imports)) if self.normalize else imports)
        options = self.options(file.options)
        if options:
            lines.append("")
            lines.extend(f"option {o};" for o in options)
        scope = f".{file.package}" if file.package else ""
        if file.message_type or file.enum_type:
            lines.append("")
            for message in file.message_type:
                lines.extend(self.message(message, syntax, scope))
            for enum in file.enum_type:
                lines.extend(self.enum(enum))
        if file.extension:
            lines.append("")
            lines.extend(self.extends(file.extension, syntax))
        if file.service:
            lines.append("")
            for service in file.service:
                lines.extend(self.service(service))
        return "\n".join(lines) + "\n"

    # --- messages -----------------------------------------------------------------------------------

    def message(self, message: descriptor_pb2.DescriptorProto, syntax: str, scope: str) -> list[str]:
        """`scope` is the fully qualified name of the enclosing package or message, with a leading dot."""
        full_name = f"{scope}.{message.name}"
        map_entries = {f"{full_name}.{n.name}": n for n in message.nested_type if n.options.map_entry}
        groups = {f.type_name for f in message.field if f.type == F.TYPE_GROUP}
        synthetic = {f.oneof_index for f in message.field if f.proto3_optional}
        body: list[str] = []
        body.extend(self.reserved(message.reserved_range, message.reserved_name, exclusive_end=True))
        options = self.options(message.options)
        if options:
            body.append("")
            body.extend(f"option {o};" for o in options)
        plain = [
            f
            for f in message.field
            if f.type != F.TYPE_GROUP and (not f.HasField("oneof_index") or f.oneof_index in synthetic)
        ]
        if plain:
            body.append("")
            body.extend(self.field(f, syntax, map_entries) for f in self.sorted_fields(plain))
        oneofs = [
            (i, decl)
            for i, decl in enumerate(message.oneof_decl)
            if i not in synthetic
            and any(f.HasField("oneof_index") and f.oneof_index == i for f in message.field)
        ]
        if oneofs:
            body.append("")
            for index, decl in oneofs:
                body.extend(self.oneof(message, index, decl, syntax, map_entries))
        group_fields = [f for f in message.field if f.type == F.TYPE_GROUP]
        if group_fields:
            raise UnsupportedProtoError("groups")
        ranges = self.ranges(message.extension_range, exclusive_end=True)
        if ranges:
            body.append("")
            body.extend(f"extensions {r};" for r in ranges)
        if message.extension:
            body.append("")
            body.extend(self.extends(message.extension, syntax))
        nested = [
            n
            for n in message.nested_type
            if not n.options.map_entry and f"{full_name}.{n.name}" not in groups
        ]
        if nested or message.enum_type:
            body.append("")
            for n in nested:
                body.extend(self.message(n, syntax, full_name))
            for enum in message.enum_type:
                body.extend(self.enum(enum))
        return [f"message {message.name} {{", *_indented(_strip_leading_blank(body)), "}"]

    def sorted_fields(self, fields: Sequence[F]) -> list[F]:
        return sorted(fields, key=lambda f: f.number) if self.normalize else list(fields)

    def oneof(
        self,
        message: descriptor_pb2.DescriptorProto,
        index: int,
        decl: descriptor_pb2.OneofDescriptorProto,
        syntax: str,
        map_entries: dict[str, Any],
    ) -> list[str]:
        body: list[str] = []
        options = self.options(decl.options)
        if options:
            body.append("")
            body.extend(f"option {o};" for o in options)
        members = [f for f in message.field if f.HasField("oneof_index") and f.oneof_index == index]
        body.append("")
        body.extend(self.field(f, syntax, map_entries, in_oneof=True) for f in self.sorted_fields(members))
        return [f"oneof {decl.name} {{", *_indented(_strip_leading_blank(body)), "}"]

    def field(self, field: F, syntax: str, map_entries: dict[str, Any], *, in_oneof: bool = False) -> str:
        entry = map_entries.get(field.type_name)
        if entry is not None and field.label == F.LABEL_REPEATED:
            key, value = entry.field
            declaration = f"map<{_type(key)}, {_type(value)}> {field.name} = {field.number}"
        else:
            declaration = f"{_label(field, syntax, in_oneof)}{_type(field)} {field.name} = {field.number}"
        extras = self.options(field.options)
        if field.HasField("default_value"):
            extras.append(f"default = {_default(field)}")
        if field.HasField("json_name") and field.json_name != _default_json_name(field.name):
            extras.append(f'json_name = "{_escape(field.json_name)}"')
        return declaration + _bracketed(extras) + ";"

    def extends(self, extensions: Iterable[F], syntax: str) -> list[str]:
        """`extend X { ... }` blocks, one per run of consecutive extensions of the same message."""
        runs: list[tuple[str, list[F]]] = []
        for extension in extensions:
            if extension.type == F.TYPE_GROUP:
                raise UnsupportedProtoError("groups")
            if runs and runs[-1][0] == extension.extendee:
                runs[-1][1].append(extension)
            else:
                runs.append((extension.extendee, [extension]))
        lines: list[str] = []
        for extendee, fields in runs:
            lines.append(f"extend {extendee} {{")
            lines.extend(INDENT + self.field(f, syntax, {}) for f in self.sorted_fields(fields))
            lines.append("}")
        return lines

    # --- enums and services -------------------------------------------------------------------------

    def enum(self, enum: descriptor_pb2.EnumDescriptorProto) -> list[str]:
        body = self.reserved(enum.reserved_range, enum.reserved_name, exclusive_end=False)
        body.extend(f"option {o};" for o in self.options(enum.options))
        values = list(enum.value)
        if self.normalize:
            values.sort(key=lambda v: (v.number, v.name))
        for value in values:
            body.append(f"{value.name} = {value.number}{_bracketed(self.options(value.options))};")
        return [f"enum {enum.name} {{", *_indented(body), "}"]

    def service(self, service: descriptor_pb2.ServiceDescriptorProto) -> list[str]:
        body: list[str] = []
        options = self.options(service.options)
        if options:
            body.append("")
            body.extend(f"option {o};" for o in options)
        if service.method:
            body.append("")
        for method in service.method:
            request = ("stream " if method.client_streaming else "") + method.input_type
            response = ("stream " if method.server_streaming else "") + method.output_type
            line = f"rpc {method.name} ({request}) returns ({response})"
            method_options = self.options(method.options)
            if method_options:
                body.append(line + " {")
                body.extend(_indented(f"option {o};" for o in method_options))
                body.append("};")
            else:
                body.append(line + ";")
        return [f"service {service.name} {{", *_indented(_strip_leading_blank(body)), "}"]

    # --- ranges -------------------------------------------------------------------------------------

    def ranges(self, ranges: Iterable[Any], *, exclusive_end: bool) -> list[str]:
        items = sorted(ranges, key=lambda r: r.start) if self.normalize else list(ranges)
        out = []
        for r in items:
            end = r.end - 1 if exclusive_end else r.end
            if end == r.start:
                out.append(str(r.start))
            else:
                out.append(f"{r.start} to {'max' if end >= MAX_FIELD_NUMBER else end}")
        return out

    def reserved(self, ranges: Iterable[Any], names: Iterable[str], *, exclusive_end: bool) -> list[str]:
        lines = [f"reserved {text};" for text in self.ranges(ranges, exclusive_end=exclusive_end)]
        lines.extend(f'reserved "{name}";' for name in (sorted(names) if self.normalize else names))
        return lines

    # --- options ------------------------------------------------------------------------------------

    def options(self, options: Message) -> list[str]:
        """`name = value` for each option set, custom options as `(.full.name) = value`."""
        decoded = self.decoded(options)
        out: list[str] = []
        for descriptor, value in decoded.ListFields():
            name = f"(.{descriptor.full_name})" if descriptor.is_extension else descriptor.name
            if descriptor.name == "features" and not descriptor.is_extension:
                raise UnsupportedProtoError("editions features")
            values = list(value) if descriptor.is_repeated else [value]
            out.extend(f"{name} = {_value(descriptor, v)}" for v in values)
        return sorted(out) if self.normalize else out

    def decoded(self, options: Message) -> Message:
        """The options message with custom options decoded through the pool (they arrive as unknown
        fields of the plain descriptor_pb2 class)."""
        if not len(unknown_fields.UnknownFieldSet(options)):
            return options
        if self.pool is None:
            raise UnsupportedProtoError("custom options (no descriptor pool to decode them)")
        try:
            cls = message_factory.GetMessageClass(
                self.pool.FindMessageTypeByName(options.DESCRIPTOR.full_name)
            )
            decoded = cls.FromString(options.SerializeToString())
        except (KeyError, DecodeError) as exc:
            raise UnsupportedProtoError(f"custom options: {exc}") from None
        if len(unknown_fields.UnknownFieldSet(decoded)):
            raise UnsupportedProtoError("custom options not defined by the schema or its imports")
        return decoded


def _strip_leading_blank(lines: list[str]) -> list[str]:
    return lines[1:] if lines and lines[0] == "" else lines


def _bracketed(options: list[str]) -> str:
    """Field and enum value options: `[one]`, or one per line as Confluent prints several."""
    if not options:
        return ""
    if len(options) == 1:
        return f" [{options[0]}]"
    last = len(options) - 1
    return (
        " [\n" + "\n".join(_indented([o + ("," if i < last else "") for i, o in enumerate(options)])) + "\n]"
    )


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
        return f'"{_escape(field.default_value)}"'
    if field.type == F.TYPE_BYTES:
        return f'"{field.default_value}"'  # already C-escaped in the descriptor
    return field.default_value


def _default_json_name(name: str) -> str:
    parts = name.split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def _escape(text: str) -> str:
    return text_encoding.CEscape(text, as_utf8=True)


def _value(descriptor: Any, value: Any) -> str:
    """An option value in .proto syntax; messages as `{ name: value, ... }` over several lines."""
    kind = descriptor.type
    if kind == FieldDescriptor.TYPE_BOOL:
        return "true" if value else "false"
    if kind == FieldDescriptor.TYPE_ENUM:
        return str(descriptor.enum_type.values_by_number[value].name)
    if kind == FieldDescriptor.TYPE_STRING:
        return f'"{_escape(value)}"'
    if kind == FieldDescriptor.TYPE_BYTES:
        return f'"{text_encoding.CEscape(value, as_utf8=False)}"'
    if kind in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if kind in (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_GROUP):
        return _message_value(value)
    return str(value)


def _message_value(message: Message) -> str:
    entries = []
    for descriptor, value in message.ListFields():
        key = f"[{descriptor.full_name}]" if descriptor.is_extension else descriptor.name
        if descriptor.message_type is not None and descriptor.message_type.GetOptions().map_entry:
            key_field, value_field = descriptor.message_type.fields
            literals = [
                "{\n"
                + "\n".join(_indented([f"key: {_value(key_field, k)},\nvalue: {_value(value_field, v)}"]))
                + "\n}"
                for k, v in sorted(value.items())
            ]
            entries.append(f"{key}: [\n" + "\n".join(_indented([",\n".join(literals)])) + "\n]")
        elif descriptor.is_repeated:
            items = ",\n".join(_value(descriptor, v) for v in value)
            entries.append(f"{key}: [\n" + "\n".join(_indented([items])) + "\n]")
        else:
            entries.append(f"{key}: {_value(descriptor, value)}")
    if not entries:
        return "{}"
    return "{\n" + "\n".join(_indented([",\n".join(entries)])) + "\n}"
