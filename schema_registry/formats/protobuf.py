"""Protobuf schemas: compiled by protoc (grpcio-tools) into descriptors, never parsed with regexes.

The schema text and the text of every reference are written to a private temporary directory under
their import paths (the schema itself as `schema.proto`), Google's well-known types come from the
include directory bundled with grpcio-tools, and `protoc --descriptor_set_out --include_imports`
produces a FileDescriptorSet. protoc runs in a subprocess so its diagnostics (written to the process's
stderr by C++ code) become the InvalidSchemaError message, and concurrent parses never share state.

The canonical form is the text format of the schema's FileDescriptorProto: comments, whitespace and
declaration formatting do not make a different schema; declaration order does.
"""

from __future__ import annotations

import importlib.resources
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from google.protobuf import descriptor_pb2, descriptor_pool, text_format
from google.protobuf.descriptor import FileDescriptor

from schema_registry.formats.protobuf_printer import UnsupportedProtoError, print_proto
from schema_registry.formats.types import InvalidSchemaError, ParsedSchema, SchemaType

MAIN_FILE = "schema.proto"
PROTOC_TIMEOUT_SECONDS = 30.0


def well_known_include_dir() -> str:
    return str(importlib.resources.files("grpc_tools") / "_proto")


class ProtobufSchema(ParsedSchema):
    """A compiled .proto file. `file` is its descriptor (in a private pool holding its imports too)."""

    schema_type = SchemaType.PROTOBUF

    def __init__(
        self, raw: str, references: Mapping[str, str] | None, descriptor_set: descriptor_pb2.FileDescriptorSet
    ) -> None:
        super().__init__(raw, references)
        self.descriptor_set = descriptor_set
        pool = descriptor_pool.DescriptorPool()
        for file_proto in descriptor_set.file:
            pool.Add(file_proto)
        self.file: FileDescriptor = pool.FindFileByName(MAIN_FILE)
        self.file_proto = next(f for f in descriptor_set.file if f.name == MAIN_FILE)
        self._canonical = text_format.MessageToString(self.file_proto, as_one_line=True)

    @property
    def canonical(self) -> str:
        return self._canonical

    def normalized(self) -> str:
        """The schema re-printed from its descriptor, or `raw` if that print would not be the same schema."""
        try:
            printed = print_proto(self.file_proto)
        except UnsupportedProtoError:
            return self.raw
        try:
            reparsed = parse_protobuf(printed, self.references)
        except InvalidSchemaError:
            return self.raw
        return printed if reparsed == self else self.raw


def parse_protobuf(schema_str: str, references: Mapping[str, str] | None = None) -> ProtobufSchema:
    """Compile `schema_str`; `references` maps import paths (e.g. "other.proto") to their texts."""
    if not isinstance(schema_str, str):
        raise InvalidSchemaError(f"schema must be a string, got {type(schema_str).__name__}")
    references = dict(references or {})
    with tempfile.TemporaryDirectory(prefix="refinery-proto-") as tmp:
        root = Path(tmp) / "src"
        _write(root, MAIN_FILE, schema_str)
        for import_path, text in references.items():
            _write(root, _checked_import_path(import_path), text)
        out = Path(tmp) / "out.pb"
        _run_protoc(root, out)
        descriptor_set = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    try:
        return ProtobufSchema(schema_str, references, descriptor_set)
    except (TypeError, KeyError, ValueError) as exc:  # protoc accepted it but the runtime cannot load it
        raise InvalidSchemaError(f"protobuf schema cannot be loaded: {exc}") from None


def _checked_import_path(import_path: str) -> str:
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
    return str(path)


def _write(root: Path, relative: str, text: str) -> None:
    if not isinstance(text, str):
        raise InvalidSchemaError(f"{relative}: schema text must be a string")
    target = root / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        target.write_text(text, encoding="utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidSchemaError(f"{relative}: schema text is not encodable as UTF-8: {exc.reason}") from None


def _run_protoc(root: Path, out: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"--proto_path={root}",
        f"--proto_path={well_known_include_dir()}",
        f"--descriptor_set_out={out}",
        "--include_imports",
        MAIN_FILE,
    ]
    try:
        result = subprocess.run(
            command, cwd=root, capture_output=True, text=True, timeout=PROTOC_TIMEOUT_SECONDS, check=False
        )
    except subprocess.TimeoutExpired:
        raise InvalidSchemaError(f"protoc did not finish within {PROTOC_TIMEOUT_SECONDS:.0f}s") from None
    if result.returncode != 0:
        message = result.stderr.strip().replace(f"{root}/", "") or f"protoc exited with {result.returncode}"
        raise InvalidSchemaError(message)
