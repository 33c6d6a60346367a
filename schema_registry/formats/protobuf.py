"""Protobuf schemas: compiled by protoc (grpcio-tools) into descriptors, never parsed with regexes.

The schema text and the text of every reference are written to a private temporary directory under
their import paths (the schema itself as `schema.proto`); the files Confluent bundles resolve without
being registered (`bundled_imports`: google/protobuf/*, google/type/*, confluent/meta.proto,
confluent/type/decimal.proto and variant.proto), and `protoc --descriptor_set_out --include_imports`
produces a FileDescriptorSet. protoc runs in a subprocess so its diagnostics (written to the process's
stderr by C++ code) can be read, and concurrent parses never share state; only its `file:line:col:`
error lines reach the InvalidSchemaError message, never its log noise.

The canonical form, which decides "same schema", is the text format of the schema's FileDescriptorProto
with each message's fields in field-number order: comments, whitespace, declaration formatting and the
order of field declarations do not make a different schema (Confluent's canonical print moves oneof
members after the other fields, so a stored print must compare equal to the text it came from).
`canonical_string()` is that print (`protobuf_printer`), what the registry stores, as Confluent does.
"""

from __future__ import annotations

import atexit
import base64
import binascii
import functools
import importlib.resources
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from google.protobuf import descriptor_pb2, descriptor_pool, text_format
from google.protobuf.descriptor import FileDescriptor
from google.protobuf.message import DecodeError

from schema_registry.formats.protobuf_options import strip_options, unknown_option_positions
from schema_registry.formats.protobuf_printer import UnsupportedProtoError, print_proto
from schema_registry.formats.types import InvalidSchemaError, ParsedSchema, SchemaType

MAIN_FILE = "schema.proto"
PROTOC_TIMEOUT_SECONDS = 30.0
MAX_OPTION_PASSES = 8
# protoc's own error lines: "schema.proto:3:9: ..." or "other.proto: File not found."
_ERROR_LINE = re.compile(r"^[\w./-]+\.proto(:\d+:\d+)?: (?!warning:)")
# protoc from grpcio-tools without `python -m grpc_tools.protoc` (no site, no pkg_resources): ~3x faster
_PROTOC = (
    "import sys; sys.path.insert(0, sys.argv[1]); from grpc_tools import _protoc_compiler; "
    "sys.exit(_protoc_compiler.run_main([b'protoc'] + [a.encode() for a in sys.argv[2:]]))"
)
GOOGLE_TYPES = (
    "calendar_period",
    "color",
    "date",
    "datetime",
    "dayofweek",
    "decimal",
    "expr",
    "fraction",
    "interval",
    "latlng",
    "money",
    "month",
    "phone_number",
    "postal_address",
    "quaternion",
    "timeofday",
)


def well_known_include_dir() -> str:
    return str(importlib.resources.files("grpc_tools") / "_proto")


BUNDLED_PREFIX = "refinery-proto-bundled-"


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def sweep_bundled_imports(temp_dir: str | None = None) -> int:
    """Remove the bundled-import directories of registry processes that are gone (named with their pid;
    a process removes its own at exit, which a SIGKILL skips). Returns how many were removed."""
    removed = 0
    for path in Path(temp_dir or tempfile.gettempdir()).glob(f"{BUNDLED_PREFIX}*-*"):
        owner = path.name[len(BUNDLED_PREFIX) :].split("-", 1)[0]
        if owner.isdigit() and int(owner) != os.getpid() and _process_gone(int(owner)):
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed


@functools.cache
def bundled_imports() -> str:
    """A directory holding the imports Confluent bundles beyond google/protobuf (which grpcio-tools has):
    google/type/*.proto (from googleapis-common-protos) and confluent/meta.proto, confluent/type/*.proto
    (printed from confluent-kafka's compiled descriptors). Made once per process, named with its pid, so
    that the next process sweeps what a killed one left."""
    sweep_bundled_imports()
    root = Path(tempfile.mkdtemp(prefix=f"{BUNDLED_PREFIX}{os.getpid()}-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    spec = importlib.util.find_spec("google.type")
    for location in (spec.submodule_search_locations or []) if spec else []:
        for name in GOOGLE_TYPES:
            source = Path(location) / f"{name}.proto"
            if source.is_file():
                (root / "google" / "type").mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, root / "google" / "type" / source.name)
    try:
        from confluent_kafka.schema_registry.confluent import meta_pb2
        from confluent_kafka.schema_registry.confluent.type import decimal_pb2, variant_pb2
    except ImportError:  # an older confluent-kafka: the files are then simply not bundled
        return str(root)
    for module in (meta_pb2, decimal_pb2, variant_pb2):
        proto = descriptor_pb2.FileDescriptorProto.FromString(module.DESCRIPTOR.serialized_pb)
        target = root / proto.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(print_proto(proto), encoding="utf-8")
    return str(root)


class ProtobufSchema(ParsedSchema):
    """A compiled .proto file. `file` is its descriptor, in `pool` (which holds its imports too)."""

    schema_type = SchemaType.PROTOBUF

    def __init__(
        self, raw: str, references: Mapping[str, str] | None, descriptor_set: descriptor_pb2.FileDescriptorSet
    ) -> None:
        super().__init__(raw, references)
        self.descriptor_set = descriptor_set
        self.pool = descriptor_pool.DescriptorPool()
        for file_proto in descriptor_set.file:
            self.pool.Add(file_proto)
        self.file: FileDescriptor = self.pool.FindFileByName(MAIN_FILE)
        self.file_proto = next(f for f in descriptor_set.file if f.name == MAIN_FILE)
        self._canonical = text_format.MessageToString(_fields_by_number(self.file_proto), as_one_line=True)
        self.ignored_options = False  # undefined custom options were left out (then `raw` is stored)

    @property
    def canonical(self) -> str:
        return self._canonical

    def canonical_string(self) -> str:
        """Confluent's canonical print of the schema (`raw` for what the printer cannot render)."""
        return self._print(normalize=False)

    def normalized(self) -> str:
        """The canonical print with options, imports and fields sorted (Confluent's normalize)."""
        return self._print(normalize=True)

    def _print(self, *, normalize: bool) -> str:
        if self.ignored_options:
            return self.raw
        try:
            return print_proto(self.file_proto, self.pool, normalize=normalize)
        except UnsupportedProtoError:
            return self.raw


def _fields_by_number(file_proto: descriptor_pb2.FileDescriptorProto) -> descriptor_pb2.FileDescriptorProto:
    copy = descriptor_pb2.FileDescriptorProto()
    copy.CopyFrom(file_proto)
    pending = list(copy.message_type)
    while pending:
        message = pending.pop()
        fields = sorted(message.field, key=lambda f: f.number)
        del message.field[:]
        message.field.extend(fields)
        pending.extend(message.nested_type)
    return copy


def parse_protobuf(schema_str: str, references: Mapping[str, str] | None = None) -> ProtobufSchema:
    """Compile `schema_str`; `references` maps import paths (e.g. "other.proto") to their texts."""
    if not isinstance(schema_str, str):
        raise InvalidSchemaError(f"schema must be a string, got {type(schema_str).__name__}")
    references = dict(references or {})
    files = {MAIN_FILE: schema_str, **_checked(references)}
    text = schema_str
    for _ in range(MAX_OPTION_PASSES):  # protoc names one unknown option per declaration at a time
        try:
            descriptor_set = _compile({**files, MAIN_FILE: text}, [MAIN_FILE])
            break
        except InvalidSchemaError as exc:
            positions = unknown_option_positions(str(exc))
            stripped = strip_options(text, positions) if positions else None
            if stripped is None:
                raise
            text = stripped
    else:
        raise InvalidSchemaError(f"more than {MAX_OPTION_PASSES} rounds of undefined custom options")
    ignored_options = text != schema_str
    try:
        parsed = ProtobufSchema(schema_str, references, descriptor_set)
    except (TypeError, KeyError, ValueError) as exc:  # protoc accepted it but the runtime cannot load it
        raise InvalidSchemaError(f"protobuf schema cannot be loaded: {exc}") from None
    parsed.ignored_options = ignored_options
    return parsed


def descriptor_to_text(schema: str, references: Mapping[str, str] | None = None) -> str | None:
    """The .proto text of a schema sent as a base64 FileDescriptorProto (confluent-kafka's serializers
    register dependencies that way; Confluent's server accepts it and stores text), else None.

    The descriptor's imports are compiled from `references` and the bundled files so that its custom
    options can be decoded and printed; a descriptor that does not link against them, or that uses
    something the printer cannot render, is an InvalidSchemaError (never handed to protoc as text)."""
    text = schema.strip()
    if not text or any(c.isspace() for c in text) or "{" in text or ";" in text:
        return None
    try:
        proto = descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError, DecodeError):
        return None
    if not proto.name:
        return None
    pool = descriptor_pool.DescriptorPool()
    if proto.dependency:
        stub = "".join(f'import "{d}";\n' for d in proto.dependency)
        deps = _compile(
            {"_imports.proto": f'syntax = "proto3";\n{stub}', **_checked(dict(references or {}))},
            ["_imports.proto"],
        )
        for file_proto in deps.file:
            if file_proto.name != "_imports.proto":
                pool.Add(file_proto)
    try:
        pool.Add(proto)
        return print_proto(proto, pool)
    except (TypeError, KeyError, ValueError) as exc:
        raise InvalidSchemaError(f"{proto.name}: the file descriptor does not link: {exc}") from None
    except UnsupportedProtoError as exc:
        raise InvalidSchemaError(
            f"{proto.name}: cannot store this file descriptor as .proto text: {exc}"
        ) from None


def _checked(references: dict[str, str]) -> dict[str, str]:
    for import_path in references:
        path = PurePosixPath(import_path)
        if (
            not import_path
            or path.is_absolute()
            or ".." in path.parts
            or "\\" in import_path
            or "\x00" in import_path
            or import_path == MAIN_FILE
        ):
            raise InvalidSchemaError(f"reference name {import_path!r} is not a usable import path")
    return references


def _compile(files: Mapping[str, str], inputs: list[str]) -> descriptor_pb2.FileDescriptorSet:
    with tempfile.TemporaryDirectory(prefix="refinery-proto-") as tmp:
        root = Path(tmp) / "src"
        for relative, text in files.items():
            _write(root, relative, text)
        out = Path(tmp) / "out.pb"
        _run_protoc(root, out, inputs)
        return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def _write(root: Path, relative: str, text: str) -> None:
    if not isinstance(text, str):
        raise InvalidSchemaError(f"{relative}: schema text must be a string")
    target = root / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        target.write_text(text, encoding="utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidSchemaError(f"{relative}: schema text is not encodable as UTF-8: {exc.reason}") from None


@functools.cache
def _grpc_tools_parent() -> str:
    """The directory holding the grpc_tools package (protoc runs without site-packages set up)."""
    return str(Path(str(importlib.resources.files("grpc_tools"))).parent)


def _run_protoc(root: Path, out: Path, inputs: list[str]) -> None:
    command = [
        sys.executable,
        "-S",
        "-c",
        _PROTOC,
        _grpc_tools_parent(),
        f"--proto_path={root}",
        f"--proto_path={well_known_include_dir()}",
        f"--proto_path={bundled_imports()}",
        f"--descriptor_set_out={out}",
        "--include_imports",
        *inputs,
    ]
    try:
        result = subprocess.run(
            command, cwd=root, capture_output=True, text=True, timeout=PROTOC_TIMEOUT_SECONDS, check=False
        )
    except subprocess.TimeoutExpired:
        raise InvalidSchemaError(f"protoc did not finish within {PROTOC_TIMEOUT_SECONDS:.0f}s") from None
    if result.returncode != 0:
        raise InvalidSchemaError(protoc_errors(result.stderr, root) or "invalid Protobuf schema")


def protoc_errors(stderr: str, root: Path | None = None) -> str:
    """protoc's error lines (`file:line:col: message`), without its log noise, warnings or our paths."""
    lines = []
    for line in stderr.splitlines():
        line = line.strip()
        if root is not None:
            line = line.replace(f"{root}/", "")
        if _ERROR_LINE.match(line):
            lines.append(line)
    return "\n".join(lines)
