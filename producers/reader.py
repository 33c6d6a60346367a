"""Read any pipeline topic and get decoded records: envelope metadata plus the payload decoded with the
schema the envelope names (fetched from the registry by id, cached).

    reader = Reader(["prod.telemetry.1234.player_killed-v2"], catalog=SchemaCatalog.from_settings(),
                    offset="beginning", where=compile_where(["env=prod", "attribute.platform=pc"]))
    for record in reader.records(max_records=10, idle_timeout_s=5, exit_at_end=True):
        print(record.to_json())

The reader assigns itself every partition of the topics, or only `partitions` (no consumer group,
nothing committed), so it never disturbs the pipeline's consumers. Where it starts, as kcat's `-o`:
`offset` "beginning", "end" (the default), `N` (absolute) or `-N` (N records before the end of each
partition); or `from_time_ms` (the first record at or after that time, Kafka's offsetsForTimes).
`exit_at_end` stops once every partition has been read up to its end as of the start.
Filters match record headers before anything is decoded: `where` is a test on the headers
(`producers.where.compile_where`, the route-set syntax) or, as before, a mapping of routing fields
(`env`, `title`, ...), `attr.<name>` or raw header names to values. A record that cannot be decoded is
yielded with `error` set instead of stopping the reader.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from google.protobuf import json_format
from google.protobuf.message import Message as ProtobufMessage

from common.config import KafkaSettings
from common.envelope import NAME_BY_FORMAT, decode_envelope
from common.errors import InvalidInputError
from common.headers import FIELD_HEADERS, HeaderValue
from common.kafka_log import describe_failure, error_text, with_log
from producers.codecs import decode_payload
from producers.errors import BrokerUnavailableError, UnknownTopicError
from producers.schemas import SchemaCatalog


def header_name(key: str) -> str:
    """`title` -> `ce_title`; `attr.platform` and raw header names pass through."""
    return FIELD_HEADERS.get(key, key)


def parse_where(clauses: Sequence[str]) -> dict[str, str]:
    """['title=1234', 'env=prod'] -> {'ce_title': '1234', 'ce_env': 'prod'}."""
    out: dict[str, str] = {}
    for clause in clauses:
        key, sep, value = clause.partition("=")
        if not sep or not key.strip():
            raise InvalidInputError(f"filter {clause!r} must look like KEY=VALUE, e.g. title=1234")
        out[header_name(key.strip())] = value
    return out


def parse_offset(text: str | int) -> str | int:
    """kcat's `-o`: "beginning", "end", N (absolute) or -N (N before the end); InvalidInputError else."""
    if isinstance(text, int) or text in ("beginning", "end"):
        return text
    try:
        return int(text)
    except ValueError:
        raise InvalidInputError(f"--offset {text!r} must be beginning, end, N or -N") from None


def jsonable(value: Any) -> Any:
    """Python data from any decoded payload, ready for json.dumps (bytes become base64 text)."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    if isinstance(value, ProtobufMessage):
        return json_format.MessageToDict(value, preserving_proto_field_name=True)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


@dataclass(frozen=True)
class DecodedRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    metadata: dict[str, Any] = field(default_factory=dict)
    payload: Any = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "key": self.key.decode("utf-8", "backslashreplace") if self.key is not None else None,
            "metadata": self.metadata,
        }
        if self.error is not None:
            out["error"] = self.error
        else:
            out["payload"] = jsonable(self.payload)
            if self.metadata.get("format") == "raw":
                out["payload_encoding"] = "base64"
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, default=str)


class Reader:
    """Decode records from topics; see the module docstring."""

    def __init__(
        self,
        topics: Sequence[str],
        *,
        catalog: SchemaCatalog,
        kafka: KafkaSettings | None = None,
        from_beginning: bool = False,
        offset: str | int | None = None,
        partitions: Sequence[int] | None = None,
        from_time_ms: int | None = None,
        where: Mapping[str, str] | Callable[[Mapping[str, bytes]], bool] | None = None,
        timeout_s: float = 5.0,
    ) -> None:
        kafka = kafka or KafkaSettings()
        self.topics = list(topics)
        self.catalog = catalog
        self._test = where if callable(where) else None
        self.filters = (
            {} if callable(where) else {header_name(k): v.encode() for k, v in (where or {}).items()}
        )
        self._timeout = timeout_s
        self._offset = parse_offset("beginning" if from_beginning and offset is None else offset or "end")
        self._only = frozenset(partitions) if partitions else None
        self._from_time_ms = from_time_ms
        self._ends: dict[tuple[str, int], int] = {}  # end offset of each partition when reading started
        self._bootstrap = kafka.bootstrap_servers
        self._consumer = Consumer(
            {
                **with_log(kafka.client_config()),
                "group.id": "refinery-reader",  # required by librdkafka; unused: we assign, never commit
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "socket.connection.setup.timeout.ms": int(timeout_s * 1000),
            }
        )
        self._assigned = False
        self._pending: set[tuple[str, int]] = set()  # partitions not yet read up to their end offset

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def partitions(self) -> list[TopicPartition]:
        """The partitions to read with their start offsets; BrokerUnavailableError / UnknownTopicError /
        InvalidInputError (a partition the topic does not have) otherwise."""
        try:
            cluster = self._consumer.list_topics(timeout=self._timeout)
        except KafkaException as exc:
            detail = f"no answer within {self._timeout:.0f}s ({error_text(exc)})"
            raise BrokerUnavailableError(describe_failure(self._bootstrap, detail)) from None
        out: list[TopicPartition] = []
        for topic in self.topics:
            meta = cluster.topics.get(topic)
            if meta is None or meta.error is not None:
                raise UnknownTopicError(f"topic {topic!r} does not exist")
            missing = sorted(self._only - set(meta.partitions)) if self._only is not None else []
            if missing:
                raise InvalidInputError(
                    f"topic {topic!r} has no partition {missing[0]} (it has 0..{len(meta.partitions) - 1})"
                )
            chosen = [p for p in sorted(meta.partitions) if self._only is None or p in self._only]
            out.extend(self._start(topic, chosen))
        return out

    def _start(self, topic: str, partitions: list[int]) -> list[TopicPartition]:
        """Concrete start offsets (and the end offsets, for `exit_at_end`) of a topic's partitions."""
        by_time: dict[int, int] = {}
        if self._from_time_ms is not None:
            asked = [TopicPartition(topic, p, self._from_time_ms) for p in partitions]
            try:
                found = self._consumer.offsets_for_times(asked, timeout=self._timeout)
            except KafkaException as exc:
                raise BrokerUnavailableError(describe_failure(self._bootstrap, error_text(exc))) from None
            by_time = {tp.partition: tp.offset for tp in found}
        out = []
        for p in partitions:
            try:
                low, high = self._consumer.get_watermark_offsets(
                    TopicPartition(topic, p), timeout=self._timeout
                )
            except KafkaException as exc:
                raise BrokerUnavailableError(describe_failure(self._bootstrap, error_text(exc))) from None
            self._ends[(topic, p)] = high
            if self._from_time_ms is not None:
                start = by_time.get(p, -1)
                start = high if start < 0 else start  # no record at or after that time: the end
            elif self._offset == "beginning":
                start = low
            elif self._offset == "end":
                start = high
            else:
                assert isinstance(self._offset, int)
                start = self._offset if self._offset >= 0 else high + self._offset
            out.append(TopicPartition(topic, p, min(max(start, low), high)))
        return out

    def records(
        self,
        max_records: int | None = None,
        idle_timeout_s: float | None = None,
        *,
        exit_at_end: bool = False,
    ) -> Iterator[DecodedRecord]:
        """Yield matching records until `max_records`, `idle_timeout_s` without one (None: forever), or,
        with `exit_at_end`, every partition read up to its end offset as of the start."""
        if not self._assigned:
            assignment = self.partitions()
            self._consumer.assign(assignment)
            self._assigned = True
            self._pending = {
                (tp.topic, tp.partition)
                for tp in assignment
                if tp.offset < self._ends[(tp.topic, tp.partition)]
            }
        count = 0
        last = time.monotonic()
        while max_records is None or count < max_records:
            if exit_at_end and not self._pending:
                return
            batch = self._consumer.consume(num_messages=500, timeout=0.5)
            if not batch:
                if idle_timeout_s is not None and time.monotonic() - last > idle_timeout_s:
                    return
                continue
            last = time.monotonic()
            for msg in batch:
                if msg.error() is not None:
                    continue
                where = (msg.topic() or "", msg.partition() or 0)
                if where in self._pending and (msg.offset() or 0) + 1 >= self._ends[where]:
                    self._pending.discard(where)
                if not self._matches(msg):
                    continue
                yield self.decode(msg)
                count += 1
                if max_records is not None and count >= max_records:
                    return

    def _matches(self, msg: Message) -> bool:
        if self._test is None and not self.filters:
            return True
        headers = dict(msg.headers() or ())
        if self._test is not None:
            return self._test({name: value for name, value in headers.items() if isinstance(value, bytes)})
        return all(headers.get(name) == value for name, value in self.filters.items())

    def decode(self, msg: Message) -> DecodedRecord:
        topic, partition, offset = msg.topic() or "", msg.partition() or 0, msg.offset() or 0
        try:
            envelope = decode_envelope(msg.value())
            md = envelope.metadata
            payload_format = NAME_BY_FORMAT[md.payload_format]
            metadata = {
                "message_id": md.message_id,
                "env": md.env,
                "source": md.source,
                "title": md.title,
                "category": md.category,
                "version": md.version,
                "schema_id": md.schema_id,
                "format": payload_format,
                "produced_at_ms": md.produced_at_ms,
                "producer": md.producer,
                "attributes": dict(md.attributes),
            }
            schema = self.catalog.by_id(md.schema_id)
            payload = decode_payload(envelope.payload, payload_format, schema)
        except InvalidInputError as exc:
            raw = msg.headers() or []
            pairs = raw.items() if isinstance(raw, dict) else raw
            headers = {name: _text(value) for name, value in pairs}
            return DecodedRecord(topic, partition, offset, msg.key(), {"headers": headers}, error=str(exc))
        return DecodedRecord(topic, partition, offset, msg.key(), metadata, payload)


def _text(value: HeaderValue) -> str:
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else str(value or "")
