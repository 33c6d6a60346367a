"""The reference workload (/work/shared/workload.md) as ready-to-send records for raw-client baselines.

`WorkloadSampler` draws event metadata with the workload's shares; `RecordFactory` turns it into the
exact bytes the SDK would put on the wire (envelope value + CloudEvents headers), so baselines and
products move the same records.
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from common.envelope import encode_envelope, make_envelope
from common.headers import Headers, metadata_to_headers
from common.topics import ingest_topic

ENVS = (("prod", 90), ("dev", 10))
TITLES = (("1234", 40), ("2345", 25), ("3456", 15), ("4567", 10), ("5678", 6), ("6789", 4))
# category -> (payload format, version, share)
CATEGORIES = {
    "match_started": ("avro", 1, 25),
    "player_killed": ("avro", 2, 40),
    "purchase": ("protobuf", 1, 10),
    "session_heartbeat": ("json", 1, 20),
    "crash_report": ("raw", 1, 5),
}
PLATFORMS = (("pc", 40), ("ps", 35), ("xbox", 25))
# Overall sources are telemetry 80% / backend 20%; purchases (10%) are all backend, so the other
# categories go to backend with probability 10/90.
OTHER_BACKEND_SHARE = 10 / 90
SIZE_MIX = ((200, 60), (1024, 30), (20 * 1024, 10))
# Schema ids used in raw records (the registry benchmark registers real ones).
SCHEMA_IDS = {
    "match_started": 1,
    "player_killed": 3,
    "purchase": 4,
    "session_heartbeat": 5,
    "crash_report": 6,
}
EVENTS_PER_MATCH = 50


@dataclass(frozen=True, slots=True)
class Event:
    env: str
    source: str
    title: str
    category: str
    payload_format: str
    version: int
    platform: str
    match_id: str
    size: int


def _choices(pairs: tuple[tuple[str, int], ...]) -> tuple[list[str], list[int]]:
    return [p[0] for p in pairs], [p[1] for p in pairs]


class WorkloadSampler:
    """Deterministic (seeded) stream of workload events. `titles` replaces the six reference titles
    (the scale variant spreads the same mix over 500 synthetic titles)."""

    def __init__(
        self,
        *,
        size: int | None = 1024,
        seed: int = 7,
        titles: tuple[tuple[str, int], ...] = TITLES,
        envs: tuple[tuple[str, int], ...] = ENVS,
    ) -> None:
        self._rng = random.Random(seed)
        self._size = size
        self._envs = _choices(envs)
        self._titles = _choices(titles)
        self._platforms = _choices(PLATFORMS)
        self._categories = list(CATEGORIES), [c[2] for c in CATEGORIES.values()]
        self._sizes = [s for s, _ in SIZE_MIX], [w for _, w in SIZE_MIX]
        self._match_id = ""
        self._left_in_match = 0

    def _pick(self, table: tuple[list[str], list[int]]) -> str:
        return self._rng.choices(table[0], weights=table[1])[0]

    def next(self) -> Event:
        if self._left_in_match <= 0:
            self._match_id = uuid.UUID(int=self._rng.getrandbits(128)).hex
            self._left_in_match = EVENTS_PER_MATCH
        self._left_in_match -= 1
        category = self._pick(self._categories)
        fmt, version, _ = CATEGORIES[category]
        if category == "purchase":
            source = "backend"
        else:
            source = "backend" if self._rng.random() < OTHER_BACKEND_SHARE else "telemetry"
        size = self._size or self._rng.choices(self._sizes[0], weights=self._sizes[1])[0]
        return Event(
            env=self._pick(self._envs),
            source=source,
            title=self._pick(self._titles),
            category=category,
            payload_format=fmt,
            version=version,
            platform=self._pick(self._platforms),
            match_id=self._match_id,
            size=size,
        )

    def __iter__(self) -> Iterator[Event]:
        while True:
            yield self.next()


@dataclass(frozen=True, slots=True)
class RawRecord:
    topic: str
    key: bytes
    value: bytes
    headers: Headers


class RecordFactory:
    """Envelope + headers for an event, exactly as they go on the wire."""

    def __init__(self, producer_name: str = "bench/raw") -> None:
        self._producer = producer_name
        self._payload = os.urandom(64 * 1024)

    def payload(self, size: int) -> bytes:
        return self._payload[:size]

    def record(self, event: Event) -> RawRecord:
        envelope = make_envelope(
            env=event.env,
            source=event.source,
            title=event.title,
            category=event.category,
            version=event.version,
            schema_id=SCHEMA_IDS[event.category],
            payload_format=event.payload_format,
            payload=self.payload(event.size),
            producer=self._producer,
            attributes={"platform": event.platform},
        )
        return RawRecord(
            topic=ingest_topic(event.env, event.source),
            key=event.match_id.encode(),
            value=encode_envelope(envelope),
            headers=metadata_to_headers(envelope.metadata),
        )


def workload_ingest_topics() -> list[str]:
    return [ingest_topic(env, source) for env, _ in ENVS for source in ("telemetry", "backend")]


def synthetic_titles(count: int = 500) -> tuple[tuple[str, int], ...]:
    """`count` titles for the scale variant, sharing the message mix evenly."""
    return tuple((f"{10000 + i}", 1) for i in range(count))
