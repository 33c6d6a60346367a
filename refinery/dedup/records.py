"""The dedup changelog's record format: id records, batch INTENT and DONE records, and their keys.

- id record: key `{topic}:{partition}` of the input partition, value the message ids joined by newlines,
  no `kind` header, timestamp the time the ids were recorded.
- INTENT: key `_batch`, header `kind: intent`, value JSON `{"batch", "inputs", "topics", "ids"}`: the
  batch's input partitions and offsets, the derived topics its dedup-route outputs go to and, per input
  partition, a short digest of every message id it may write there (`id_digest`, 8 bytes, base64 of
  the concatenation: 2,000 ids cost ~21 KB whatever their length). Its timestamp is the intent's time.
- DONE: key `_batch`, header `kind: done`, value the batch id. Without a `partitions` header it closes
  the whole batch (the data plane, once the batch's ids are recorded); with one (a JSON list of
  `[topic, partition]`) only those input partitions (a restore that settled just the partitions it owns).
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

PartitionKey = tuple[str, int]
Headers = list[tuple[str, bytes]]
KIND_HEADER = "refinery.changelog.kind"
PARTITIONS_HEADER = "refinery.changelog.partitions"
INTENT, DONE = b"intent", b"done"
BATCH_KEY = b"_batch"
DIGEST_BYTES = 8


def id_digest(message_id: bytes) -> bytes:
    """The short stand-in for a message id inside an intent (blake2b, 8 bytes: with at most a few
    thousand ids per batch, a stranger's id matches one by chance with odds around 1e-16)."""
    return hashlib.blake2b(message_id, digest_size=DIGEST_BYTES).digest()


@dataclass
class Intent:
    """A batch about to write outputs on dedup routes: its inputs (partition -> [first, next) offsets),
    the derived topics those outputs go to, and per input partition the `id_digest` of every message id
    it may write (empty for intents written before ids were recorded: settling then falls back to every
    id found in the settle window). Build one with `Intent.for_batch`."""

    batch_id: str
    inputs: dict[PartitionKey, tuple[int, int]]
    topics: list[str]
    timestamp_ms: int = 0
    ids: dict[PartitionKey, list[bytes]] = field(default_factory=dict)  # digests, see `id_digest`

    @classmethod
    def for_batch(
        cls,
        inputs: Mapping[PartitionKey, tuple[int, int]],
        topics: Iterable[str],
        ids: Mapping[PartitionKey, Iterable[bytes]],
    ) -> Intent:
        """A fresh intent (new batch id, now as its time) for a batch reading `inputs` and writing the
        message ids `ids` (per input partition, e.g. `RoutedBatch.dedup_ids`) to the derived `topics`."""
        digests = {tp: [id_digest(i) for i in batch_ids] for tp, batch_ids in ids.items()}
        return cls(
            uuid.uuid4().hex,
            dict(inputs),
            sorted(set(topics)),
            int(time.time() * 1000),
            {tp: d for tp, d in digests.items() if d},
        )

    def encode(self) -> bytes:
        doc: dict[str, Any] = {
            "batch": self.batch_id,
            "inputs": [[t, p, first, next_] for (t, p), (first, next_) in self.inputs.items()],
            "topics": self.topics,
        }
        if self.ids:
            doc["ids"] = [[t, p, base64.b64encode(b"".join(d)).decode()] for (t, p), d in self.ids.items()]
        return json.dumps(doc).encode()

    @classmethod
    def decode(cls, value: bytes, timestamp_ms: int) -> Intent:
        data = json.loads(value)
        inputs = {(t, int(p)): (int(first), int(next_)) for t, p, first, next_ in data["inputs"]}
        ids: dict[PartitionKey, list[bytes]] = {}
        for t, p, packed in data.get("ids", ()):
            raw = base64.b64decode(packed)
            ids[(t, int(p))] = [raw[i : i + DIGEST_BYTES] for i in range(0, len(raw), DIGEST_BYTES)]
        return cls(str(data["batch"]), inputs, [str(t) for t in data["topics"]], timestamp_ms, ids)


class ChangelogRecord(NamedTuple):
    """One record to write to the changelog (timestamp None: the time it is produced)."""

    key: bytes
    value: bytes
    headers: Headers | None = None
    timestamp_ms: int | None = None


def changelog_key(tp: PartitionKey) -> bytes:
    return f"{tp[0]}:{tp[1]}".encode()


def parse_changelog_key(key: bytes) -> PartitionKey:
    topic, _, partition = key.decode().rpartition(":")
    return topic, int(partition)


def id_records(
    batch_ids: Mapping[PartitionKey, Iterable[bytes]], timestamp_ms: int | None = None
) -> list[ChangelogRecord]:
    """The id records for the ids recorded in one batch (one per input partition that has any)."""
    out = []
    for tp, ids in batch_ids.items():
        value = b"\n".join(ids)
        if value:
            out.append(ChangelogRecord(changelog_key(tp), value, None, timestamp_ms))
    return out


def intent_record(intent: Intent) -> ChangelogRecord:
    return ChangelogRecord(BATCH_KEY, intent.encode(), [(KIND_HEADER, INTENT)])


def done_record(batch_id: str, partitions: Iterable[PartitionKey] | None = None) -> ChangelogRecord:
    """DONE for the whole batch, or (with `partitions`) for those input partitions of it only."""
    headers: Headers = [(KIND_HEADER, DONE)]
    if partitions is not None:
        headers.append((PARTITIONS_HEADER, json.dumps(sorted([t, p] for t, p in partitions)).encode()))
    return ChangelogRecord(BATCH_KEY, batch_id.encode(), headers)


def header_value(headers: Any, name: str) -> bytes | None:
    if not headers:
        return None
    for key, value in headers:
        if key == name:
            return value if isinstance(value, bytes) else str(value).encode()
    return None


def changelog_kind(headers: Any) -> bytes | None:
    return header_value(headers, KIND_HEADER)


def done_partitions(headers: Any) -> set[PartitionKey] | None:
    """The input partitions a DONE record closes; None: the whole batch."""
    raw = header_value(headers, PARTITIONS_HEADER)
    if raw is None:
        return None
    return {(str(t), int(p)) for t, p in json.loads(raw)}
