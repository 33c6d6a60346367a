"""The newest records of a topic, decoded by the schema id in their envelope, exactly as
`refinery-client tail` decodes them (`producers.reader.Reader`: envelope, then payload by schema id from
the registry). A record that does not decode (not an envelope, an unknown schema id, the registry away)
keeps its headers and its value as hex.

The reader assigns partitions itself (no consumer group, nothing committed), so looking never moves
anyone's offsets. Blocking: the app calls `newest_records` in a thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Message

from common.config import KafkaSettings
from producers.errors import RegistryUnavailableError
from producers.reader import DecodedRecord, Reader
from producers.schemas import SchemaCatalog

HEX_BYTES = 2048  # value bytes shown as hex when a record does not decode
IDLE_S = 2.0


@dataclass(frozen=True)
class SampledRecord(DecodedRecord):
    """A decoded record with what the catalog also shows: its Kafka timestamp, headers and value size."""

    timestamp_ms: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    value: bytes | None = None

    def to_page(self) -> dict[str, Any]:
        out = self.to_dict()
        out["timestamp_ms"] = self.timestamp_ms
        out["headers"] = self.headers
        out["value_bytes"] = len(self.value or b"")
        if self.error is not None:
            raw = self.value or b""
            out["value_hex"] = raw[:HEX_BYTES].hex(" ")
            out["value_hex_cut"] = len(raw) > HEX_BYTES
        return out


class _SamplingReader(Reader):
    """`Reader` whose records also carry the timestamp, headers and raw value."""

    def decode(self, msg: Message) -> SampledRecord:
        try:
            base = super().decode(msg)
        except RegistryUnavailableError as exc:  # the registry is down: show this record undecoded
            base = DecodedRecord(msg.topic() or "", msg.partition() or 0, msg.offset() or 0, msg.key(), {},
                                 error=str(exc))  # fmt: skip
        raw = msg.headers() or []
        pairs = raw.items() if isinstance(raw, dict) else raw
        headers = {
            name: (v.decode("utf-8", "backslashreplace") if isinstance(v, bytes) else str(v or ""))
            for name, v in pairs
        }
        return SampledRecord(
            base.topic,
            base.partition,
            base.offset,
            base.key,
            base.metadata,
            base.payload,
            base.error,
            timestamp_ms=msg.timestamp()[1],
            headers=headers,
            value=msg.value(),
        )


def newest_records(
    topic: str,
    count: int,
    *,
    catalog: SchemaCatalog,
    kafka: KafkaSettings,
    per_partition: int | None = None,
    from_time_ms: int | None = None,
) -> list[SampledRecord]:
    """Up to `count` of the topic's newest records, newest first: the last `per_partition` (default
    `count`) of each partition, or those at or after `from_time_ms`, merged by timestamp."""
    options: dict[str, Any] = (
        {"from_time_ms": from_time_ms} if from_time_ms is not None else {"offset": -(per_partition or count)}
    )
    with _SamplingReader([topic], catalog=catalog, kafka=kafka, **options) as reader:
        found: list[DecodedRecord] = list(reader.records(idle_timeout_s=IDLE_S, exit_at_end=True))
    records = [r for r in found if isinstance(r, SampledRecord)]
    records.sort(key=lambda r: (r.timestamp_ms, r.partition, r.offset), reverse=True)
    return records[:count]
