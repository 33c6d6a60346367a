"""The reference workload (/work/shared/workload.md) as a fast, deterministic message generator.

Used by the demo producer (`refinery-demo`) and the benchmarks. Same seed, same messages (ids and
timestamps are added later by the SDK). Shares:

- env prod 90% / dev 10%; title 1234 40%, 2345 25%, 3456 15%, 4567 10%, 5678 6%, 6789 4%;
- category match_started (Avro v1) 25%, player_killed (Avro v2) 40%, purchase (Protobuf v1) 10%,
  session_heartbeat (JSON Schema v1) 20%, crash_report (raw bytes, Avro-encoded by the "client") 5%;
- source telemetry 80% / backend 20% overall, with purchase always from backend: the other categories
  come from backend with probability 1/9 so the overall share stays 20%;
- attribute platform pc 40% / ps 35% / xbox 25%; key = the match id.

Payload sizes are approximate (within a few bytes): a `labels` entry (or the crash dump) pads each
payload to the requested size.
"""

from __future__ import annotations

import bisect
import io
import itertools
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import fastavro

from producers.codecs import encode_payload
from producers.schemas import ResolvedSchema, SchemaCatalog, parse_schema

SCHEMA_DIR = Path(__file__).parent / "workload_schemas"

ENVS = (("prod", 0.9), ("dev", 0.1))
TITLES = (("1234", 0.40), ("2345", 0.25), ("3456", 0.15), ("4567", 0.10), ("5678", 0.06), ("6789", 0.04))
CATEGORIES = (
    ("match_started", 0.25),
    ("player_killed", 0.40),
    ("purchase", 0.10),
    ("session_heartbeat", 0.20),
    ("crash_report", 0.05),
)
PLATFORMS = (("pc", 0.40), ("ps", 0.35), ("xbox", 0.25))
BACKEND_SHARE = 0.20
# P(backend | category is not purchase), so that the overall backend share is BACKEND_SHARE.
_BACKEND_GIVEN_OTHER = (BACKEND_SHARE - 0.10) / 0.90
MIXED_SIZES = ((200, 0.6), (1024, 0.3), (20 * 1024, 0.1))
MATCHES_PER_TITLE = 64


@dataclass(frozen=True)
class WorkloadSchema:
    """One schema file of the workload: registered for every title as (title, category, version)."""

    category: str
    version: int
    schema_type: str
    path: Path

    @property
    def text(self) -> str:
        return self.path.read_text(encoding="utf-8")


# Registration order matters: player_killed v1 must exist before v2.
SCHEMAS = (
    WorkloadSchema("match_started", 1, "AVRO", SCHEMA_DIR / "match_started_v1.avsc"),
    WorkloadSchema("player_killed", 1, "AVRO", SCHEMA_DIR / "player_killed_v1.avsc"),
    WorkloadSchema("player_killed", 2, "AVRO", SCHEMA_DIR / "player_killed_v2.avsc"),
    WorkloadSchema("purchase", 1, "PROTOBUF", SCHEMA_DIR / "purchase_v1.proto"),
    WorkloadSchema("session_heartbeat", 1, "JSON", SCHEMA_DIR / "session_heartbeat_v1.json"),
    WorkloadSchema("crash_report", 1, "AVRO", SCHEMA_DIR / "crash_report_v1.avsc"),
)
# The version each category is sent with.
SEND_VERSION = {
    "match_started": 1,
    "player_killed": 2,
    "purchase": 1,
    "session_heartbeat": 1,
    "crash_report": 1,
}


@dataclass(frozen=True, slots=True)
class WorkloadMessage:
    env: str
    source: str
    title: str
    category: str
    version: int
    payload: Any  # dict (Avro/JSON), a Protobuf message, or bytes (raw)
    key: str
    attributes: dict[str, str]


def register_workload(catalog: SchemaCatalog, titles: Sequence[str] | None = None) -> list[ResolvedSchema]:
    """Register every workload schema for every title (idempotent: re-registering is a no-op)."""
    out = []
    for title in titles or [t for t, _ in TITLES]:
        for spec in SCHEMAS:
            out.append(
                catalog.register(title, spec.category, spec.text, spec.schema_type, version=spec.version)
            )
    return out


@cache
def offline_schema(category: str, version: int) -> ResolvedSchema:
    """A workload schema parsed without a registry (schema id 0), for local encoding and sizing."""
    spec = next(s for s in SCHEMAS if s.category == category and s.version == version)
    return parse_schema(0, spec.text, spec.schema_type)


def purchase_class() -> Any:
    """The `refinery.workload.v1.Purchase` message class, compiled from the workload's .proto file."""
    proto = offline_schema("purchase", 1).proto
    assert proto is not None
    return proto.message_class


class _Picker:
    """Weighted choice by one random() call and a bisect (much faster than random.choices per call)."""

    def __init__(self, weighted: Sequence[tuple[Any, float]]) -> None:
        self.values = [v for v, _ in weighted]
        self.cumulative = list(itertools.accumulate(w for _, w in weighted))

    def __call__(self, rng: random.Random) -> Any:
        return self.values[
            min(bisect.bisect(self.cumulative, rng.random() * self.cumulative[-1]), len(self.values) - 1)
        ]


class WorkloadGenerator:
    """Deterministic stream of workload messages. `payload_size`: None (natural size), bytes, or "mixed"."""

    def __init__(
        self, seed: int = 0, payload_size: int | str | None = None, start_ms: int = 1_760_000_000_000
    ):
        self._rng = random.Random(seed)
        self._env = _Picker(ENVS)
        self._title = _Picker(TITLES)
        self._category = _Picker(CATEGORIES)
        self._platform = _Picker(PLATFORMS)
        if isinstance(payload_size, str) and payload_size != "mixed":
            raise ValueError(f"payload_size must be None, a number of bytes or 'mixed', not {payload_size!r}")
        fixed_size = payload_size if isinstance(payload_size, int) else None
        self._size = _Picker(MIXED_SIZES) if payload_size == "mixed" else (lambda _rng: fixed_size)
        self._clock = start_ms
        self._purchase = purchase_class()
        self._crash_schema = offline_schema("crash_report", 1).avro
        self._builders = {
            "match_started": self._match_started,
            "player_killed": self._player_killed,
            "purchase": self._purchase_message,
            "session_heartbeat": self._heartbeat,
            "crash_report": self._crash_report,
        }
        self._base_sizes = {c: self._natural_size(c) for c, _ in CATEGORIES}

    def __iter__(self) -> Iterator[WorkloadMessage]:
        while True:
            yield self.next()

    def take(self, count: int) -> list[WorkloadMessage]:
        return [self.next() for _ in range(count)]

    def next(self) -> WorkloadMessage:
        rng = self._rng
        self._clock += 1
        category = self._category(rng)
        title = self._title(rng)
        source = "backend" if category == "purchase" or rng.random() < _BACKEND_GIVEN_OTHER else "telemetry"
        match_id = f"m-{title}-{rng.randrange(MATCHES_PER_TITLE)}"
        size = self._size(rng)
        padding = max(0, size - self._base_sizes[category]) if size else 0
        payload = self._builders[category](match_id, padding)
        return WorkloadMessage(
            env=self._env(rng),
            source=source,
            title=title,
            category=category,
            version=SEND_VERSION[category],
            payload=payload,
            key=match_id,
            attributes={"platform": self._platform(rng)},
        )

    # --- payload builders -------------------------------------------------------------------------
    def _player(self) -> str:
        return f"p-{self._rng.randrange(100_000)}"

    @staticmethod
    def _labels(padding: int) -> dict[str, str]:
        return {"pad": _pad(padding)} if padding else {}

    def _match_started(self, match_id: str, padding: int) -> dict[str, Any]:
        rng = self._rng
        return {
            "match_id": match_id,
            "map_name": rng.choice(("dust", "harbor", "summit", "canyon")),
            "mode": rng.choice(("ranked", "casual", "arena")),
            "region": rng.choice(("eu-west", "us-east", "ap-south")),
            "player_ids": [self._player() for _ in range(4)],
            "started_at_ms": self._clock,
            "labels": self._labels(padding),
        }

    def _player_killed(self, match_id: str, padding: int) -> dict[str, Any]:
        rng = self._rng
        return {
            "match_id": match_id,
            "killer_id": self._player(),
            "victim_id": self._player(),
            "weapon": rng.choice(("rifle", "shotgun", "sniper", "knife")),
            "distance_m": round(rng.uniform(1, 300), 1),
            "killed_at_ms": self._clock,
            "labels": self._labels(padding),
            "headshot": rng.random() < 0.3,
        }

    def _purchase_message(self, match_id: str, padding: int) -> Any:
        rng = self._rng
        return self._purchase(
            match_id=match_id,
            player_id=self._player(),
            item_sku=f"sku-{rng.randrange(500)}",
            price_cents=rng.choice((99, 499, 999, 1999)),
            currency=rng.choice(("EUR", "USD", "JPY")),
            purchased_at_ms=self._clock,
            labels=self._labels(padding),
        )

    def _heartbeat(self, match_id: str, padding: int) -> dict[str, Any]:
        rng = self._rng
        return {
            "session_id": f"s-{rng.randrange(1_000_000)}",
            "player_id": self._player(),
            "match_id": match_id,
            "sent_at_ms": self._clock,
            "latency_ms": round(rng.uniform(5, 200), 1),
            "fps": rng.randrange(30, 241),
            "labels": self._labels(padding),
        }

    def _crash_report(self, match_id: str, padding: int) -> bytes:
        record = {
            "match_id": match_id,
            "player_id": self._player(),
            "build": f"1.{self._rng.randrange(40)}.0",
            "signal": self._rng.choice(("SIGSEGV", "SIGABRT", "EXCEPTION_ACCESS_VIOLATION")),
            "crashed_at_ms": self._clock,
            "dump": _pad(padding or 64).encode(),
        }
        out = io.BytesIO()
        fastavro.schemaless_writer(out, self._crash_schema, record)
        return out.getvalue()

    def _natural_size(self, category: str) -> int:
        """Encoded size of a payload minus its padding (measured with one byte of padding)."""
        saved = self._rng.getstate()
        try:
            payload = self._builders[category]("m-0000-00", 1)
        finally:
            self._rng.setstate(saved)
        _, data = encode_payload(payload, offline_schema(category, SEND_VERSION[category]))
        return len(data) - 1


@cache
def _pad(length: int) -> str:
    return "x" * length
