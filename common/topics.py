"""Topic names: the derived-topic convention `{env}.{source}.{title}.{category}-v{version}`.

Kafka allows `[a-zA-Z0-9._-]` and at most 249 characters in a topic name. Our convention uses `.` to
separate components, so components may use `[a-zA-Z0-9_-]` only, must not be empty, and the version is
a positive integer written without leading zeros (so that parse(format(x)) == x).

Ingest topics follow the same convention with the reserved title `ingest`:
`{env}.{source}.ingest.all-v1`. Routes may not write to that title, which rules out routing loops.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from common.errors import TopicNameError

MAX_TOPIC_LENGTH = 249
# Used with fullmatch: `$` alone also matches before a trailing newline ("prod\n" is not a component).
_KAFKA_LEGAL = re.compile(r"^[a-zA-Z0-9._-]+$")
_COMPONENT = re.compile(r"^[a-zA-Z0-9_-]+$")
_VERSION = re.compile(r"^[1-9][0-9]*$")

INGEST_TITLE = "ingest"
INGEST_CATEGORY = "all"
INGEST_VERSION = 1
# Matches every ingest topic; the refinery subscribes with it so topics created on demand are picked up.
INGEST_TOPIC_REGEX = r"^[a-zA-Z0-9_-]+\.[a-zA-Z0-9_-]+\.ingest\.all-v1$"

COMPONENTS = ("env", "source", "title", "category")


def validate_kafka_topic(name: str) -> str:
    """Check the rules Kafka itself applies to any topic name; return the name."""
    if not name:
        raise TopicNameError("topic name is empty", part="topic")
    if name in (".", ".."):
        raise TopicNameError(f"topic name {name!r} is reserved by Kafka", part="topic")
    if len(name) > MAX_TOPIC_LENGTH:
        raise TopicNameError(
            f"topic name is {len(name)} characters long; Kafka allows at most {MAX_TOPIC_LENGTH}",
            part="topic",
        )
    if not _KAFKA_LEGAL.fullmatch(name):
        bad = sorted({c for c in name if not _KAFKA_LEGAL.match(c)})
        raise TopicNameError(
            f"topic name {name!r} has characters Kafka does not allow: {''.join(bad)!r} "
            "(allowed: letters, digits, '.', '_', '-')",
            part="topic",
        )
    return name


def validate_component(part: str, value: str) -> str:
    """Check one convention component (env, source, title or category); return it."""
    if not isinstance(value, str) or not value:
        raise TopicNameError(f"{part} is empty; every topic-name component needs a value", part=part)
    if not _COMPONENT.fullmatch(value):
        raise TopicNameError(
            f"{part} {value!r} is not allowed in a topic name: use letters, digits, '_' and '-' only "
            "(no '.', which separates components)",
            part=part,
        )
    return value


def validate_version(version: object) -> int:
    """Check that a version is a positive integer; return it as int."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise TopicNameError(f"version {version!r} must be a positive integer", part="version")
    return version


@dataclass(frozen=True, slots=True)
class TopicName:
    """A topic name in the `{env}.{source}.{title}.{category}-v{version}` convention."""

    env: str
    source: str
    title: str
    category: str
    version: int

    def __post_init__(self) -> None:
        for part in COMPONENTS:
            validate_component(part, getattr(self, part))
        validate_version(self.version)
        validate_kafka_topic(str(self))

    def __str__(self) -> str:
        return f"{self.env}.{self.source}.{self.title}.{self.category}-v{self.version}"

    @property
    def is_ingest(self) -> bool:
        return self.title == INGEST_TITLE


def format_topic(env: str, source: str, title: str, category: str, version: int) -> str:
    """Build and validate a convention topic name."""
    return str(TopicName(env, source, title, category, version))


def parse_topic(name: str) -> TopicName:
    """Parse a convention topic name, naming the bad part when it does not follow the convention."""
    validate_kafka_topic(name)
    parts = name.split(".")
    if len(parts) != 4:
        raise TopicNameError(
            f"topic {name!r} has {len(parts)} dot-separated parts; expected 4: "
            "{env}.{source}.{title}.{category}-v{version}",
            part="topic",
        )
    env, source, title, last = parts
    category, sep, version = last.rpartition("-v")
    if not sep:
        raise TopicNameError(
            f"topic {name!r} does not end in '-v{{version}}' after the category", part="version"
        )
    if not _VERSION.fullmatch(version):
        raise TopicNameError(
            f"topic {name!r}: version {version!r} must be a positive integer without leading zeros",
            part="version",
        )
    return TopicName(env, source, title, category, int(version))


_INGEST_TOPICS: dict[tuple[str, str], str] = {}  # valid (env, source) -> name; producers ask per record
_INGEST_CACHE_LIMIT = 4096


def ingest_topic(env: str, source: str) -> str:
    """The broad ingest topic that producers of (env, source) write to."""
    try:
        return _INGEST_TOPICS[(env, source)]
    except (KeyError, TypeError):  # TypeError: an unhashable argument, refused just below
        pass
    name = format_topic(env, source, INGEST_TITLE, INGEST_CATEGORY, INGEST_VERSION)
    if len(_INGEST_TOPICS) < _INGEST_CACHE_LIMIT:
        _INGEST_TOPICS[(env, source)] = name
    return name


def is_ingest_topic(name: str) -> bool:
    return re.fullmatch(INGEST_TOPIC_REGEX, name) is not None
