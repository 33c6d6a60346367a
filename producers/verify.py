"""The contract checker behind `refinery-client verify TOPIC`: every violation of `docs/contract.md` in
the records of ingest topics, each with its rule id, level (MUST/SHOULD) and the DLQ reason the worker
would give (none for rules only this checker reports).

    report = verify_topics(["prod.telemetry.ingest.all-v1"], kafka=KafkaSettings(), catalog=catalog)

`check_record` judges one record and reports every violation, not only the first (the worker's guard
stops at the first, for speed). The value rules are `common.contract`'s, the same the guard uses.
Reading assigns every partition (no consumer group, nothing committed) from the beginning up to the end
offsets seen at the start, so a run judges what the topic holds and then stops.
"""

from __future__ import annotations

import io
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import fastavro
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition
from google.protobuf.message import DecodeError

from common import contract
from common import headers as h
from common.config import KafkaSettings
from common.envelope import NAME_BY_FORMAT, encode_envelope
from common.errors import HeaderError, InvalidInputError, TopicNameError
from common.headers import HeaderValue, parse_time
from common.kafka_log import describe_failure, error_text, with_log
from common.limits import MAX_RECORD_BYTES, record_size
from common.topics import INGEST_TITLE, MAX_TOPIC_LENGTH, is_ingest_topic, parse_topic
from producers.codecs import decode_payload
from producers.errors import (
    BrokerUnavailableError,
    PayloadDecodeError,
    SchemaNotRegisteredError,
    UnknownTopicError,
)
from producers.schemas import SchemaCatalog
from proto.envelope_pb2 import Envelope

_MIRRORED = ((h.MESSAGE_ID, "message_id"), (h.SOURCE, "source"), (h.TITLE, "title"), (h.CATEGORY, "category"),
             (h.VERSION, "version"), (h.SCHEMA_ID, "schema_id"), (h.FORMAT, "payload_format"))  # fmt: skip
Add = Callable[[str, str], None]  # records one violation: (rule id, message)
_TYPE_OF_FORMAT = {"avro": "AVRO", "json": "JSON", "protobuf": "PROTOBUF"}


@dataclass(frozen=True)
class Violation:
    """One broken rule of one record (partition and offset -1: of the topic itself)."""

    rule: str
    message: str
    topic: str = ""
    partition: int = -1
    offset: int = -1

    @property
    def level(self) -> str:
        return contract.RULES[self.rule].level

    @property
    def dlq(self) -> str | None:
        return contract.RULES[self.rule].dlq

    def to_dict(self) -> dict[str, Any]:
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset, "rule": self.rule,
                "level": self.level, "dlq": self.dlq, "message": self.message}  # fmt: skip


@dataclass
class Report:
    """What a run saw: records read, and every violation."""

    records: int = 0
    violations: list[Violation] = field(default_factory=list)
    records_with_violations: int = 0

    @property
    def must_violations(self) -> int:
        return sum(1 for v in self.violations if v.level == "MUST")

    def summary(self) -> dict[str, Any]:
        return {"records": self.records, "records_with_violations": self.records_with_violations,
                "violations": len(self.violations), "must_violations": self.must_violations,
                "by_rule": dict(sorted(Counter(v.rule for v in self.violations).items()))}  # fmt: skip


def _text(value: HeaderValue) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value or ""


def check_record(
    topic: str,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, HeaderValue]] | None,
    *,
    partition: int = -1,
    partitions: int | None = None,
    catalog: SchemaCatalog | None = None,
) -> list[tuple[str, str]]:
    """Every violation of one record as (rule id, message). `partitions`: the topic's partition count
    (checks the key's partition); `catalog`: check the schema rules against the registry."""
    out: list[tuple[str, str]] = []

    def add(rule: str, message: str) -> None:
        out.append((rule, message))

    raw = [(k, v.encode() if isinstance(v, str) else (v or b"")) for k, v in headers or ()]
    size = record_size(key, value, raw)
    if size > MAX_RECORD_BYTES:
        add(
            "record.size",
            f"record is {size} bytes with key, headers and framing; the limit is {MAX_RECORD_BYTES}",
        )
    if not raw:
        add("headers.present", "record has no headers; the worker dead-letters it as missing_header")
    seen: dict[str, bytes] = {}
    for name, data in raw:
        if name in seen:
            add("headers.unique", f"header {name!r} appears more than once")
        else:
            seen[name] = data
    valid: dict[str, str] = {}  # required headers whose value follows its rule, as text
    for name in contract.REQUIRED_HEADERS:
        data = seen.get(name, b"")
        if not data:
            if raw:
                add("headers.required", f"required header {name!r} is missing or empty")
            continue
        problem = contract.header_problem(name, data)
        if problem is not None:
            add(*problem)
        else:
            valid[name] = data.decode()
    _check_producer_headers(seen, add)
    message_id = valid.get(h.MESSAGE_ID)
    if message_id is not None and not contract.is_uuid7(message_id):
        add("message_id.uuid7", f"ce_id {message_id!r} is not a UUIDv7 in canonical lowercase text")
    _check_topic(topic, valid, add)
    envelope = _check_envelope(value, seen, valid, add)
    if key is not None and partitions and partition >= 0:
        expected = contract.partition_for_key(key, partitions)
        if expected != partition:
            add("key.partition", f"key {key!r} is in partition {partition}; murmur2 puts it in {expected} of "
                f"{partitions} (set partitioner={contract.PARTITIONER})")  # fmt: skip
    if catalog is not None and len(valid) == len(contract.REQUIRED_HEADERS):
        _check_schema(valid, envelope, catalog, add)
    return out


def _check_producer_headers(seen: dict[str, bytes], add: Add) -> None:
    if seen.get(h.SPECVERSION) != contract.SPECVERSION_VALUE:
        add("header.specversion", f"ce_specversion must be 1.0, got {seen.get(h.SPECVERSION)!r}")
    if seen.get(h.CONTENT_TYPE) != contract.CONTENT_TYPE_VALUE:
        add("header.content_type", f"content-type must be {contract.CONTENT_TYPE_VALUE.decode()!r}, "
            f"got {seen.get(h.CONTENT_TYPE)!r}")  # fmt: skip
    time_text = seen.get(h.TIME)
    if time_text is None or not contract.is_canonical_time(_text(time_text)):
        add("header.time", f"ce_time must be UTC as YYYY-MM-DDTHH:MM:SS.sssZ, got {time_text!r}")
    if h.PRODUCER not in seen:
        add("header.producer", "header 'ce_producer' is missing")
    for name, data in seen.items():
        if name.startswith(h.ATTRIBUTE_PREFIX):
            problem = contract.attribute_name_problem(name[len(h.ATTRIBUTE_PREFIX) :])
            if problem is not None:
                add("header.attributes", f"header {name!r}: {problem}")
            elif contract.header_problem(name, data) is not None:
                add("header.utf8", f"header {name!r} is not valid UTF-8")
        elif name in (h.TIME, h.PRODUCER) and contract.header_problem(name, data) is not None:
            add("header.utf8", f"header {name!r} is not valid UTF-8")


def _check_topic(topic: str, valid: dict[str, str], add: Add) -> None:
    try:
        name = parse_topic(topic)
    except TopicNameError:
        name = None
    if name is None or not is_ingest_topic(topic) or name.title != INGEST_TITLE:
        add("topic.ingest", f"topic {topic!r} is not an ingest topic {{env}}.{{source}}.ingest.all-v1")
        return
    if h.ENV in valid and valid[h.ENV] != name.env:
        add("topic.env", f"ce_env is {valid[h.ENV]!r} but topic {topic!r} belongs to env {name.env!r}")
    if h.SOURCE in valid and valid[h.SOURCE] != name.source:
        add(
            "topic.ingest",
            f"ce_source is {valid[h.SOURCE]!r} but topic {topic!r} is source {name.source!r}'s",
        )
    parts = (h.ENV, h.SOURCE, h.TITLE, h.CATEGORY, h.VERSION)
    if all(p in valid for p in parts):
        length = (
            len(valid[h.ENV] + valid[h.SOURCE] + valid[h.TITLE] + valid[h.CATEGORY] + valid[h.VERSION]) + 5
        )
        if length > MAX_TOPIC_LENGTH:
            add("topic.length", f"the derived topic name would have {length} characters; Kafka allows "
                f"{MAX_TOPIC_LENGTH} (routes with a template dead-letter it as route_error)")  # fmt: skip


def _check_envelope(
    value: bytes | None, seen: dict[str, bytes], valid: dict[str, str], add: Add
) -> Envelope | None:
    if not value:
        add("envelope.decode", "record value is empty; expected a Refinery envelope")
        return None
    try:
        envelope = Envelope.FromString(value)
    except DecodeError as exc:
        add("envelope.decode", f"record value is not a Refinery envelope: {exc}")
        return None
    if not envelope.HasField("metadata"):
        add("envelope.decode", "envelope has no metadata")
        return None
    md = envelope.metadata
    if h.ENV in valid and md.env != valid[h.ENV]:
        add("envelope.env", f"the envelope's env is {md.env!r} but ce_env is {valid[h.ENV]!r}")
    for name, attr in _MIRRORED:
        in_envelope = getattr(md, attr)
        in_envelope = (
            NAME_BY_FORMAT.get(in_envelope, str(in_envelope))
            if attr == "payload_format"
            else str(in_envelope)
        )
        if name in valid and valid[name] != in_envelope:
            add(
                "envelope.match",
                f"header {name!r} is {valid[name]!r} but the envelope's {attr} is {in_envelope!r}",
            )
    time_text = seen.get(h.TIME)
    if time_text is not None and contract.is_canonical_time(_text(time_text)):
        try:
            stamped = parse_time(_text(time_text))
        except HeaderError:
            stamped = None
        if stamped != md.produced_at_ms:
            add(
                "header.time",
                f"ce_time {_text(time_text)!r} is not the envelope's produced_at_ms {md.produced_at_ms}",
            )
    if h.PRODUCER in seen and _text(seen[h.PRODUCER]) != md.producer:
        add("header.producer", f"ce_producer is {_text(seen[h.PRODUCER])!r} but the envelope's producer is "
            f"{md.producer!r}")  # fmt: skip
    attrs = {
        k[len(h.ATTRIBUTE_PREFIX) :]: _text(v) for k, v in seen.items() if k.startswith(h.ATTRIBUTE_PREFIX)
    }
    if attrs != dict(md.attributes):
        add(
            "header.attributes",
            f"attr.* headers {attrs} differ from the envelope's attributes {dict(md.attributes)}",
        )
    if encode_envelope(envelope) != value:
        add("envelope.canonical", "the value is not the deterministic serialization of its envelope")
    return envelope


def _check_schema(valid: dict[str, str], envelope: Envelope | None, catalog: SchemaCatalog, add: Add) -> None:
    schema_id = int(valid[h.SCHEMA_ID])
    try:
        by_id = catalog.by_id(schema_id)
    except SchemaNotRegisteredError:
        add("schema.registered", f"schema id {schema_id} is not registered (the worker's registry check "
            "dead-letters it as unknown_schema)")  # fmt: skip
        return
    title, category, version = valid[h.TITLE], valid[h.CATEGORY], int(valid[h.VERSION])
    try:
        resolved = catalog.resolve(title, category, version)
    except SchemaNotRegisteredError:
        add("schema.version", f"subject {title}.{category}-value has no version {version}")
    else:
        if resolved.schema_id != schema_id:
            add("schema.version", f"version {version} of subject {title}.{category}-value is schema id "
                f"{resolved.schema_id}, not ce_schemaid {schema_id}")  # fmt: skip
    if envelope is None:
        return
    payload_format = valid[h.FORMAT]
    wanted = _TYPE_OF_FORMAT.get(payload_format)
    if wanted is not None and wanted != by_id.schema_type:
        add(
            "payload.schema",
            f"ce_format {payload_format} does not fit schema id {schema_id} ({by_id.schema_type})",
        )
        return
    problem = _payload_problem(envelope.payload, payload_format, by_id)
    if problem is not None:
        add("payload.schema", problem)


def _payload_problem(payload: bytes, payload_format: str, schema: Any) -> str | None:
    """Why a payload does not decode with its schema, or None (raw payloads are the producer's own)."""
    try:
        if payload_format == "avro":
            data = io.BytesIO(payload)
            fastavro.schemaless_reader(data, schema.avro, None)
            if data.tell() != len(payload):
                extra = len(payload) - data.tell()
                return f"avro payload has {extra} bytes after the record (schema id {schema.schema_id})"
            return None
        decoded = decode_payload(payload, payload_format, schema)
    except (PayloadDecodeError, ValueError, EOFError, IndexError, TypeError, KeyError) as exc:
        return f"{payload_format} payload does not decode with schema id {schema.schema_id}: {exc}"
    if payload_format == "json" and not schema.json_validator.is_valid(decoded):
        return f"json payload does not match its JSON schema (id {schema.schema_id})"
    return None


def verify_topics(
    topics: Sequence[str],
    *,
    kafka: KafkaSettings | None = None,
    catalog: SchemaCatalog | None = None,
    max_records: int | None = None,
    timeout_s: float = 5.0,
) -> Iterator[Violation | Report]:
    """Yield every violation as it is found, then the Report. Reads each topic from the beginning to the end
    offsets seen at the start (at most `max_records` in all)."""
    kafka = kafka or KafkaSettings()
    consumer = Consumer({**with_log(kafka.client_config()), "group.id": "refinery-verify",
                         "enable.auto.commit": False, "enable.auto.offset.store": False})  # fmt: skip
    report = Report()
    try:
        ends, counts = _assign(consumer, topics, timeout_s, kafka.bootstrap_servers)
        for topic, count in counts.items():
            if count != contract.INGEST_PARTITIONS:
                violation = Violation("topic.partitions", f"topic {topic!r} has {count} partitions; ingest "
                                      f"topics have {contract.INGEST_PARTITIONS}", topic)  # fmt: skip
                report.violations.append(violation)
                yield violation
        deadline = time.monotonic() + timeout_s
        while ends and (max_records is None or report.records < max_records):
            batch = consumer.consume(num_messages=500, timeout=0.5)
            if not batch and time.monotonic() > deadline:
                raise BrokerUnavailableError(f"no records within {timeout_s:.0f}s from {sorted(ends)}")
            for msg in batch:
                if msg.error() is not None:
                    continue
                deadline = time.monotonic() + timeout_s
                yield from _judge(msg, counts, catalog, report)
                tp = (msg.topic() or "", msg.partition() or 0)
                if tp in ends and (msg.offset() or 0) + 1 >= ends[tp]:
                    del ends[tp]
                if max_records is not None and report.records >= max_records:
                    break
    finally:
        consumer.close()
    yield report


def _judge(
    msg: Message, counts: dict[str, int], catalog: SchemaCatalog | None, report: Report
) -> Iterator[Violation]:
    topic, partition = msg.topic() or "", msg.partition() or 0
    headers: Any = msg.headers()  # a list of (name, value) from a consumer
    found = check_record(topic, msg.key(), msg.value(), headers, partition=partition,
                         partitions=counts.get(topic), catalog=catalog)  # fmt: skip
    report.records += 1
    if found:
        report.records_with_violations += 1
    for rule, message in found:
        violation = Violation(rule, message, topic, partition, msg.offset() or 0)
        report.violations.append(violation)
        yield violation


def _assign(
    consumer: Consumer, topics: Sequence[str], timeout_s: float, bootstrap: str
) -> tuple[dict[tuple[str, int], int], dict[str, int]]:
    """Assign every non-empty partition from the beginning; (end offset per partition, partition count
    per topic)."""
    try:
        cluster = consumer.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        detail = f"no answer within {timeout_s:.0f}s ({error_text(exc)})"
        raise BrokerUnavailableError(describe_failure(bootstrap, detail)) from None
    ends: dict[tuple[str, int], int] = {}
    counts: dict[str, int] = {}
    assignment = []
    for topic in topics:
        meta = cluster.topics.get(topic)
        if meta is None or meta.error is not None:
            raise UnknownTopicError(f"topic {topic!r} does not exist")
        counts[topic] = len(meta.partitions)
        for p in sorted(meta.partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
            if high > low:
                ends[(topic, p)] = high
                assignment.append(TopicPartition(topic, p, OFFSET_BEGINNING))
    if not topics:
        raise InvalidInputError("name at least one topic")
    consumer.assign(assignment)
    return ends, counts
