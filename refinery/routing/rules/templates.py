"""Destination templates: `{field}` placeholders over header fields that must yield a convention name.

A template is checked once at load time for its shape (four dot-separated parts, `-v` then a literal
version or `{version}`, legal literal characters, env part either `{env}` or a literal env, title not
`ingest`); header values are checked when a record is routed (`render`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from common.errors import TopicNameError
from common.topics import INGEST_TITLE, parse_topic, validate_component, validate_kafka_topic
from refinery.routing.rules.model import (
    FieldRef,
    RuleError,
    TopicTemplate,
    canonical_field,
    header_for,
    known_fields_text,
)

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_LITERAL_CHARS = re.compile(r"^[A-Za-z0-9_-]*$")
_VERSION_LITERAL = re.compile(r"^[1-9][0-9]*$")
_MARK_BASE = 0xE000  # private-use characters stand in for placeholders while checking the shape


def parse_template(text: str, fail: Callable[[str], RuleError]) -> TopicTemplate:
    """Parse and check `text`; `fail(message)` builds the RuleError (it knows the route and field)."""
    if not text:
        raise fail("template is empty")
    if not text.isascii():
        raise fail(
            f"template {text!r} has non-ASCII characters; topic names allow letters, digits, '.', '_', '-'"
        )
    pieces: list[str | FieldRef] = []
    pos = 0
    for m in _PLACEHOLDER.finditer(text):
        pieces.append(_literal(text[pos : m.start()], fail))
        name = m.group(1).strip()
        field = canonical_field(name)
        if field is None:
            raise fail(
                f"template {text!r} uses unknown field {{{name}}}; known fields: {known_fields_text()}"
            )
        pieces.append(FieldRef(field))
        pos = m.end()
    pieces.append(_literal(text[pos:], fail))
    pieces = [p for p in pieces if p != ""]
    fixed_env = _check_shape(text, pieces, fail)
    return TopicTemplate(text=text, pieces=tuple(pieces), fixed_env=fixed_env)


def _literal(chunk: str, fail: Callable[[str], RuleError]) -> str:
    if "{" in chunk or "}" in chunk:
        raise fail(f"unbalanced '{{' or '}}' in template text {chunk!r}")
    return chunk


def _check_shape(text: str, pieces: list[str | FieldRef], fail: Callable[[str], RuleError]) -> str | None:
    refs = [p for p in pieces if isinstance(p, FieldRef)]
    shape = "".join(
        chr(_MARK_BASE + refs.index(p)) if isinstance(p, FieldRef) else p for p in pieces
    )  # the same field always gets the same mark
    parts = shape.split(".")
    if len(parts) != 4:
        raise fail(
            f"template {text!r} has {len(parts)} dot-separated parts; expected 4: "
            "{env}.{source}.{title}.{category}-v{version}"
        )
    env_part, source_part, title_part, last = parts
    category_part, sep, version_part = last.rpartition("-v")
    if not sep:
        raise fail(f"template {text!r} must end in '-v' followed by a version number or {{version}}")
    version_marks = [refs[ord(c) - _MARK_BASE].field for c in version_part if ord(c) >= _MARK_BASE]
    version_ok = version_marks == ["version"] and len(version_part) == 1
    if not version_ok and (version_marks or not _VERSION_LITERAL.match(version_part)):
        raise fail(
            f"template {text!r}: the version after '-v' must be a positive integer or exactly {{version}}"
        )
    for label, part in (("env", env_part), ("source", source_part), ("title", title_part)):
        _check_part(text, label, part, fail)
    _check_part(text, "category", category_part, fail)
    if title_part == INGEST_TITLE:
        raise fail(f"template {text!r} writes to an ingest topic (title {INGEST_TITLE!r}): that would loop")
    sample = "".join("1" if ord(c) >= _MARK_BASE else c for c in shape)
    try:
        validate_kafka_topic(sample)
    except TopicNameError as exc:
        raise fail(f"template {text!r}: {exc}") from None
    env_marks = [c for c in env_part if ord(c) >= _MARK_BASE]
    if env_marks:
        if len(env_part) != 1 or refs[ord(env_marks[0]) - _MARK_BASE].field != "env":
            raise fail(f"template {text!r}: the env part must be exactly {{env}} or a fixed env name")
        return None
    return env_part


def _check_part(text: str, label: str, part: str, fail: Callable[[str], RuleError]) -> None:
    literal = "".join(c for c in part if ord(c) < _MARK_BASE)
    if not part:
        raise fail(f"template {text!r}: the {label} part is empty")
    if not _LITERAL_CHARS.match(literal):
        raise fail(
            f"template {text!r}: the {label} part has characters not allowed in topic names "
            "(use letters, digits, '_' and '-')"
        )
    if literal == part:
        try:
            validate_component(label, part)
        except TopicNameError as exc:
            raise fail(f"template {text!r}: {exc}") from None


class TemplateValueError(ValueError):
    """A record's header values do not give a valid topic; `header` names the culprit when known."""

    def __init__(self, message: str, *, reason: str, header: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.header = header


def render(template: TopicTemplate, values: Mapping[str, str | None]) -> str:
    """Fill `template` from field values (None = header missing) and check the result is a valid,
    non-ingest convention name."""
    out: list[str] = []
    for piece in template.pieces:
        if isinstance(piece, str):
            out.append(piece)
            continue
        value = values.get(piece.field)
        header = header_for(piece.field)
        if value is None:
            raise TemplateValueError(
                f"template {template.text!r} needs header {header!r}, which the record does not have",
                reason="missing_header",
                header=header,
            )
        if "." in value or not value:
            raise TemplateValueError(
                f"template {template.text!r}: header {header!r} value {value!r} "
                "cannot be part of a topic name",
                reason="invalid_topic",
                header=header,
            )
        out.append(value)
    topic = "".join(out)
    try:
        name = parse_topic(topic)
    except TopicNameError as exc:
        raise TemplateValueError(
            f"template {template.text!r} gives {topic!r}, not a valid topic name: {exc}",
            reason="invalid_topic",
        ) from None
    if name.is_ingest:
        raise TemplateValueError(
            f"template {template.text!r} gives ingest topic {topic!r}; routing there would loop",
            reason="ingest_topic",
            header=header_for("title"),
        )
    return topic
