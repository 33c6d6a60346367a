"""Avro compatibility: can a reader schema decode data written with a writer schema?

Implements the schema-resolution rules of the Avro specification, as Avro's own SchemaCompatibility
(which Confluent uses) applies them, with its vocabulary:

- TYPE_MISMATCH: different kinds of type, except the promotions int -> long/float/double,
  long -> float/double, float -> double, string <-> bytes. Logical types do not matter.
- NAME_MISMATCH: records, enums and fixed types must have the same unqualified name, or the writer's
  (full or unqualified) name must be one of the reader's aliases.
- READER_FIELD_MISSING_DEFAULT_VALUE: a reader field (matched to writer fields by name or by the reader
  field's aliases) absent from the writer and without a default. Writer-only fields are skipped.
- MISSING_ENUM_SYMBOLS: writer symbols the reader lacks, unless the reader enum has a default.
- FIXED_SIZE_MISMATCH: fixed types of different sizes.
- MISSING_UNION_BRANCH: a writer type (or writer union branch) that no branch of the reader union can
  read. A writer union read by a non-union reader needs every writer branch readable by the reader.
- Arrays and maps are checked through their item and value types; records recursively (recursive
  types are assumed compatible once a pair of names is already being compared).

Paths are JSON pointers into the reader schema's canonical form, e.g. `/fields/2/type/items`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from schema_registry.formats.avro import PRIMITIVES, AvroSchema, branch_key
from schema_registry.formats.types import ProblemLog

PROMOTIONS = {
    "int": {"long", "float", "double"},
    "long": {"float", "double"},
    "float": {"double"},
    "string": {"bytes"},
    "bytes": {"string"},
}


def avro_incompatibilities(reader: AvroSchema, writer: AvroSchema, roles: tuple[str, str]) -> list[str]:
    """Messages for everything that stops `reader` decoding `writer` data; [] when compatible.

    `roles` names the reader and the writer in messages, e.g. ("new", "old") for a backward check.
    """
    check = _Check(reader, writer, roles)
    check.node(reader.tree, writer.tree, "")
    return check.problems


@dataclass
class _Check(ProblemLog):
    reader: AvroSchema
    writer: AvroSchema
    roles: tuple[str, str]
    problems: list[str] = field(default_factory=list)
    in_progress: set[tuple[str, str]] = field(default_factory=set)

    def node(self, reader: Any, writer: Any, path: str) -> None:
        """Check one reader type against one writer type, appending problems found below `path`."""
        reader = self.reader.resolve(reader)
        writer = self.writer.resolve(writer)
        if isinstance(writer, list):
            self.writer_union(reader, writer, path)
        elif isinstance(reader, list):
            self.reader_union(reader, writer, path)
        else:
            self.single(reader, writer, path)

    def probe(self, reader: Any, writer: Any, path: str) -> list[str]:
        """Problems of one pairing, without recording them (to try union branches)."""
        trial = _Check(self.reader, self.writer, self.roles, in_progress=set(self.in_progress))
        trial.node(reader, writer, path)
        return trial.problems

    def writer_union(self, reader: Any, writer: list[Any], path: str) -> None:
        for i, branch in enumerate(writer):
            if isinstance(reader, list):
                if self.probe(reader, branch, path):
                    self.report(
                        "MISSING_UNION_BRANCH",
                        path,
                        f"{{reader}} has no union branch that can read branch {i} "
                        f"({_describe(branch)}) of the union in {{writer}}",
                    )
            else:
                self.node(reader, branch, path)

    def reader_union(self, reader: list[Any], writer: Any, path: str) -> None:
        if any(not self.probe(branch, writer, f"{path}/{i}") for i, branch in enumerate(reader)):
            return
        self.report(
            "MISSING_UNION_BRANCH",
            path,
            f"{{reader}} has a union with no branch that can read {_describe(writer)} from {{writer}}",
        )

    def single(self, reader: Any, writer: Any, path: str) -> None:
        reader_kind, writer_kind = _kind(reader), _kind(writer)
        if reader_kind != writer_kind:
            if reader_kind not in PROMOTIONS.get(writer_kind, ()):
                self.report(
                    "TYPE_MISMATCH",
                    path,
                    f"{{reader}} has type {reader_kind} where {{writer}} has {writer_kind}, "
                    "which cannot be promoted to it",
                )
            return
        if reader_kind == "array":
            self.node(reader["items"], writer["items"], f"{path}/items")
        elif reader_kind == "map":
            self.node(reader["values"], writer["values"], f"{path}/values")
        elif reader_kind in ("record", "error", "enum", "fixed"):
            if not _names_match(reader, writer):
                self.report(
                    "NAME_MISMATCH",
                    f"{path}/name",
                    f"{{reader}} expects {reader['name']!r} where {{writer}} has {writer['name']!r}",
                )
                return
            getattr(self, f"named_{'record' if reader_kind == 'error' else reader_kind}")(
                reader, writer, path
            )

    def named_record(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> None:
        pair = (reader["name"], writer["name"])
        if pair in self.in_progress:
            return
        self.in_progress.add(pair)
        writer_fields = {f["name"]: f for f in writer["fields"]}
        for i, reader_field in enumerate(reader["fields"]):
            names = [reader_field["name"], *reader_field.get("aliases", [])]
            writer_field = next((writer_fields[n] for n in names if n in writer_fields), None)
            if writer_field is not None:
                self.node(reader_field["type"], writer_field["type"], f"{path}/fields/{i}/type")
            elif "default" not in reader_field:
                self.report(
                    "READER_FIELD_MISSING_DEFAULT_VALUE",
                    f"{path}/fields/{i}",
                    f"field {reader_field['name']!r} in {{reader}} has no default value "
                    "and is missing in {writer}",
                )
        self.in_progress.discard(pair)

    def named_enum(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> None:
        missing = [s for s in writer["symbols"] if s not in reader["symbols"]]
        if missing and "default" not in reader:
            self.report(
                "MISSING_ENUM_SYMBOLS",
                f"{path}/symbols",
                f"{{reader}} lacks enum symbols {missing} of {{writer}} and has no enum default",
            )

    def named_fixed(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> None:
        if reader["size"] != writer["size"]:
            self.report(
                "FIXED_SIZE_MISMATCH",
                f"{path}/size",
                f"{{reader}} expects size {reader['size']} where {{writer}} has size {writer['size']}",
            )


def _kind(node: Any) -> str:
    if isinstance(node, str):
        return node
    return str(node["type"])


def _names_match(reader: dict[str, Any], writer: dict[str, Any]) -> bool:
    def short(name: str) -> str:
        return name.rpartition(".")[2]

    if short(reader["name"]) == short(writer["name"]):
        return True
    aliases = reader.get("aliases", [])
    return writer["name"] in aliases or short(writer["name"]) in {short(a) for a in aliases}


def _describe(node: Any) -> str:
    key = branch_key(node)
    return key if key in PRIMITIVES else repr(key)
