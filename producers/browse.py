"""What `refinery-client tail` prints (`--format json|jsonl|table|raw`) and what `refinery-client topics`
lists (derived topics with their record counts).

Formats: `jsonl` one JSON object per record per line (the default, as before); `json` the same objects
pretty-printed (two-space indent), one after another; `table` one aligned line per record (topic,
partition, offset, title, category, version, key and the payload as compact JSON, cut at 60 characters);
`raw` the payload alone, as compact JSON (base64 text for `raw`-format payloads), like kcat's default of
printing only the value.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TextIO

from confluent_kafka import Consumer, KafkaException, TopicPartition

from common.config import KafkaSettings
from common.errors import TopicNameError
from common.kafka_log import describe_failure, error_text, with_log
from common.topics import INGEST_TITLE, parse_topic
from producers.errors import BrokerUnavailableError
from producers.reader import DecodedRecord, jsonable

FORMATS = ("jsonl", "json", "table", "raw")
_TABLE_COLUMNS = ("topic", "partition", "offset", "title", "category", "version", "key", "payload")
_CELL = 60


def _payload_text(record: DecodedRecord) -> str:
    if record.error is not None:
        return f"<error: {record.error}>"
    value = jsonable(record.payload)
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _cut(text: str) -> str:
    return text if len(text) <= _CELL else text[: _CELL - 1] + "…"


def format_record(record: DecodedRecord, fmt: str) -> str:
    """One record in `fmt` (see the module docstring), without the trailing newline."""
    if fmt == "json":
        return json.dumps(record.to_dict(), ensure_ascii=False, default=str, indent=2)
    if fmt == "raw":
        return _payload_text(record)
    if fmt == "table":
        md = record.metadata
        key = record.key.decode("utf-8", "backslashreplace") if record.key is not None else "-"
        cells = (
            record.topic, str(record.partition), str(record.offset), str(md.get("title", "-")),
            str(md.get("category", "-")), str(md.get("version", "-")), key, _cut(_payload_text(record)),
        )  # fmt: skip
        return "  ".join(cells)
    return record.to_json()


def table_header() -> str:
    return "  ".join(name.upper() for name in _TABLE_COLUMNS)


def write_records(records: Iterable[DecodedRecord], fmt: str, out: TextIO) -> int:
    """Write records as they come (flushed each time); return how many."""
    count = 0
    if fmt == "table":
        out.write(table_header() + "\n")
    for record in records:
        out.write(format_record(record, fmt) + "\n")
        out.flush()
        count += 1
    return count


@dataclass(frozen=True)
class TopicCount:
    topic: str
    partitions: int
    records: int  # end offset minus start offset, summed over partitions (what a reader would see)


def derived_topic_counts(kafka: KafkaSettings, *, timeout_s: float = 5.0) -> list[TopicCount]:
    """Every derived topic (convention name, title not `ingest`) with its partition and record counts."""
    consumer = Consumer(
        {**with_log(kafka.client_config()), "group.id": "refinery-topics", "enable.auto.commit": False}
    )
    try:
        try:
            cluster = consumer.list_topics(timeout=timeout_s)
        except KafkaException as exc:
            raise BrokerUnavailableError(describe_failure(kafka.bootstrap_servers, error_text(exc))) from None
        out = []
        for name in sorted(cluster.topics):
            try:
                if parse_topic(name).title == INGEST_TITLE:
                    continue
            except TopicNameError:
                continue  # internal topics (DLQ, routes, schemas) and other names
            meta = cluster.topics[name]
            records = 0
            for p in meta.partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(name, p), timeout=timeout_s)
                records += high - low
            out.append(TopicCount(name, len(meta.partitions), records))
        return out
    finally:
        consumer.close()
