"""What Kafka itself says about topics: which exist (derived, ingest, DLQ), their partitions, how many
records they hold, how fast they grow, and which consumer groups read them with what lag.

All reads go through one `AdminClient` (blocking: the app calls these in a thread):

- partitions and replicas from the cluster metadata;
- size as the records retained (end minus start offset, per partition, by ListOffsets). confluent-kafka's
  AdminClient has no DescribeLogDirs, so bytes on disk are not available here;
- rate as records appended over the last `RATE_WINDOW_S` seconds: ListOffsets for that timestamp
  (the first offset at or after it) against the end offset, so no sampling state is kept;
- consumer groups as every group with a committed offset on the topic, with lag = end - committed.
  The group offsets of the whole cluster are read at most every `GROUPS_TTL_S` seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from common.errors import TopicNameError
from common.topics import INGEST_TITLE, parse_topic

RATE_WINDOW_S = 60.0
GROUPS_TTL_S = 5.0
KINDS = ("derived", "ingest", "dlq", "other")


def topic_kind(name: str, dlq_topic: str) -> str | None:
    """'dlq', 'ingest', 'derived', 'other', or None for an internal topic (`_...`) the catalog hides."""
    if name == dlq_topic:
        return "dlq"
    if name.startswith("_"):
        return None
    try:
        parsed = parse_topic(name)
    except TopicNameError:
        return "other"
    return "ingest" if parsed.title == INGEST_TITLE else "derived"


class TopicStats:
    """Kafka's view of the topics (see the module docstring); KafkaException when Kafka does not answer."""

    def __init__(self, client_config: Mapping[str, Any], *, dlq_topic: str, timeout_s: float = 5.0) -> None:
        self.admin = AdminClient(dict(client_config))
        self.dlq_topic = dlq_topic
        self.timeout_s = timeout_s
        self._groups: tuple[float, dict[str, dict[tuple[str, int], int]]] | None = None
        self._lock = threading.Lock()

    def _metadata(self) -> Any:
        return self.admin.list_topics(timeout=self.timeout_s)

    def _offsets(self, partitions: list[TopicPartition], spec: OffsetSpec) -> dict[tuple[str, int], int]:
        if not partitions:
            return {}
        futures = self.admin.list_offsets({tp: spec for tp in partitions}, request_timeout=self.timeout_s)
        out = {}
        for tp, future in futures.items():
            try:
                out[(tp.topic, tp.partition)] = future.result().offset
            except KafkaException:
                continue  # e.g. a partition whose leader is moving: left out of this answer
        return out

    def topics(self) -> list[dict[str, Any]]:
        """Every topic but internal ones: name, kind, partitions, records retained; by kind then name."""
        metadata = self._metadata()
        chosen = {
            name: meta
            for name, meta in metadata.topics.items()
            if meta.error is None and topic_kind(name, self.dlq_topic) is not None
        }
        parts = [TopicPartition(name, p) for name, meta in chosen.items() for p in meta.partitions]
        start, end = self._offsets(parts, OffsetSpec.earliest()), self._offsets(parts, OffsetSpec.latest())
        out = []
        for name, meta in chosen.items():
            records = sum(end.get((name, p), 0) - start.get((name, p), 0) for p in meta.partitions)
            out.append(
                {
                    "name": name,
                    "kind": topic_kind(name, self.dlq_topic),
                    "partitions": len(meta.partitions),
                    "records": records,
                }
            )
        return sorted(out, key=lambda t: (KINDS.index(t["kind"]), t["name"]))

    def describe(self, topic: str) -> dict[str, Any] | None:
        """Partitions (leader, replicas, in-sync, start/end offsets), records, rate and consumer groups of
        one topic; None if it does not exist."""
        meta = self._metadata().topics.get(topic)
        if meta is None or meta.error is not None:
            return None
        parts = [TopicPartition(topic, p) for p in sorted(meta.partitions)]
        start, end = self._offsets(parts, OffsetSpec.earliest()), self._offsets(parts, OffsetSpec.latest())
        since_ms = int((time.time() - RATE_WINDOW_S) * 1000)
        recent = self._offsets(parts, OffsetSpec.for_timestamp(since_ms))
        partitions = []
        for tp in parts:
            p = meta.partitions[tp.partition]
            key = (topic, tp.partition)
            low, high = start.get(key, 0), end.get(key, 0)
            partitions.append(
                {
                    "partition": tp.partition,
                    "leader": p.leader,
                    "replicas": list(p.replicas),
                    "in_sync": list(p.isrs),
                    "start": low,
                    "end": high,
                    "records": high - low,
                }
            )
        # no record at or after the window's start: -1, i.e. nothing appended since
        appended = sum(high - recent[k] for k, high in end.items() if recent.get(k, -1) >= 0)
        return {
            "name": topic,
            "kind": topic_kind(topic, self.dlq_topic),
            "partitions": partitions,
            "records": sum(p["records"] for p in partitions),
            "per_second": round(appended / RATE_WINDOW_S, 3),
            "rate_window_s": RATE_WINDOW_S,
            "groups": self.groups(topic, end),
        }

    def groups(self, topic: str, end: Mapping[tuple[str, int], int]) -> list[dict[str, Any]]:
        """Consumer groups with committed offsets on `topic`: per-partition committed offset and lag."""
        out = []
        for group, committed in sorted(self._group_offsets().items()):
            mine = {p: off for (t, p), off in committed.items() if t == topic}
            if not mine:
                continue
            lags = {p: max(end.get((topic, p), off) - off, 0) for p, off in mine.items()}
            out.append(
                {
                    "group": group,
                    "lag": sum(lags.values()),
                    "partitions": [
                        {"partition": p, "committed": mine[p], "lag": lags[p]} for p in sorted(mine)
                    ],
                }
            )
        return sorted(out, key=lambda g: (-g["lag"], g["group"]))

    def _group_offsets(self) -> dict[str, dict[tuple[str, int], int]]:
        with self._lock:
            if self._groups is not None and time.monotonic() - self._groups[0] < GROUPS_TTL_S:
                return self._groups[1]
        listed = self.admin.list_consumer_groups(request_timeout=self.timeout_s).result()
        ids = [g.group_id for g in listed.valid]
        futures = {
            gid: self.admin.list_consumer_group_offsets(
                [ConsumerGroupTopicPartitions(gid)], request_timeout=self.timeout_s
            )[gid]
            for gid in ids
        }
        found: dict[str, dict[tuple[str, int], int]] = {}
        for gid, future in futures.items():
            try:
                answer = future.result()
            except KafkaException:
                continue  # a group deleted meanwhile, or one the broker will not describe: left out
            offsets = {
                (tp.topic, tp.partition): tp.offset for tp in answer.topic_partitions or [] if tp.offset >= 0
            }
            if offsets:
                found[gid] = offsets
        with self._lock:
            self._groups = (time.monotonic(), found)
        return found
