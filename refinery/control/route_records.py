"""The records of the routes topic (no I/O): the live set under one key, one history entry per publish.

    key `routes`                       {"format": 1, "version", "routes": <canonical YAML>,
                                        "who", "when", "forced"}        the set in force (compaction keeps it)
    key `history/<when>/<version>`     {"format": 1, "version", "who", "when", "route_count", "forced"}

Why a key per publish: the topic is compacted, which keeps only the newest record of each key, so the
`routes` key alone forgets every earlier set. A history key that is never written twice is never
compacted away, and a key per publish (not per version) keeps a rollback to an earlier set as its own
entry. Entries are small (~200 bytes), so years of changes stay a few megabytes; the topic's single
partition orders them (offset order is publish order). One key holding the whole list would need a
read-modify-write per publish (two operators would lose an entry) and would grow into one large record.

`who`, `when` and `forced` are optional when decoding: records written before they existed still load
(their history is the one `routes` record that compaction left, dated by its Kafka timestamp).
"""

from __future__ import annotations

import getpass
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from refinery.routing.rules import RouteSet, RuleError, load_route_set

ROUTES_KEY = b"routes"
HISTORY_PREFIX = b"history/"
RECORD_FORMAT = 1


@dataclass(frozen=True)
class Publication:
    """One published set: its version (content hash), who published it, when (UTC) and how many routes.
    `who` and `when` are None for records written before they were recorded."""

    version: str
    who: str | None
    when: str | None
    route_count: int
    forced: bool = False

    def to_doc(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "who": self.who,
            "when": self.when,
            "route_count": self.route_count,
            "forced": self.forced,
        }


@dataclass(frozen=True)
class PublishedSet:
    """The set in force with its publication (from the `routes` record)."""

    route_set: RouteSet
    publication: Publication


def utc_now() -> str:
    """ISO 8601, UTC, millisecond precision, `Z` suffix."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (e.g. a container's arbitrary uid)
        return f"uid{os.getuid()}"


def cli_identity(user: str | None = None) -> str:
    """`who` for the CLI: `cli:<os user>`, or `<user> (cli:<os user>)` once an operator proved a name."""
    local = f"cli:{os_user()}"
    return f"{user} ({local})" if user else local


def encode_route_record(
    route_set: RouteSet, *, who: str | None = None, when: str | None = None, forced: bool = False
) -> bytes:
    doc: dict[str, Any] = {
        "format": RECORD_FORMAT,
        "version": route_set.version,
        "routes": route_set.canonical_text,
    }
    if who is not None:
        doc["who"] = who
    if when is not None:
        doc["when"] = when
    if forced:
        doc["forced"] = True
    return json.dumps(doc, sort_keys=True).encode()


def _doc(value: bytes | None, what: str) -> dict[str, Any]:
    if not value:
        raise RuleError(f"{what} record is empty")
    try:
        doc = json.loads(value)
    except ValueError as exc:  # includes UnicodeDecodeError and JSONDecodeError
        raise RuleError(f"{what} record is not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != RECORD_FORMAT:
        raise RuleError(f"{what} record is not a format-{RECORD_FORMAT} document")
    return doc


def _optional_text(doc: dict[str, Any], field: str) -> str | None:
    value = doc.get(field)
    return value if isinstance(value, str) else None


def decode_published(value: bytes | None, *, timestamp_ms: int | None = None) -> PublishedSet:
    """The set and its publication in a `routes` record; RuleError when it is not a valid one. Without a
    recorded `when` (an old record), `timestamp_ms` (the Kafka record time) dates it."""
    doc = _doc(value, "routes")
    if not isinstance(doc.get("routes"), str):
        raise RuleError(f"routes record is not a format-{RECORD_FORMAT} route set document")
    route_set = load_route_set(doc["routes"])
    if doc.get("version") != route_set.version:
        raise RuleError(
            f"routes record says version {doc.get('version')!r} but its text hashes to {route_set.version}"
        )
    when = _optional_text(doc, "when")
    if when is None and timestamp_ms is not None and timestamp_ms > 0:
        stamp = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
        when = stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    publication = Publication(
        route_set.version, _optional_text(doc, "who"), when, len(route_set.routes), doc.get("forced") is True
    )
    return PublishedSet(route_set, publication)


def decode_route_record(value: bytes | None) -> RouteSet:
    """The route set in a `routes` record value; RuleError when it is not a valid one."""
    return decode_published(value).route_set


def history_key(publication: Publication) -> bytes:
    return HISTORY_PREFIX + f"{publication.when}/{publication.version}".encode()


def encode_history_record(publication: Publication) -> bytes:
    return json.dumps({"format": RECORD_FORMAT, **publication.to_doc()}, sort_keys=True).encode()


def decode_history_record(value: bytes | None) -> Publication:
    doc = _doc(value, "history")
    version, count = doc.get("version"), doc.get("route_count")
    if not isinstance(version, str) or not isinstance(count, int):
        raise RuleError("history record lacks a version or a route count")
    return Publication(
        version, _optional_text(doc, "who"), _optional_text(doc, "when"), count, doc.get("forced") is True
    )
