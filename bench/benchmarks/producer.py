"""Benchmark 1: Producer SDK send throughput vs a hand-written producer doing the same work, for 200 B,
1 KB and 20 KB payloads. Goal >= 0.9x (issue 14). Each contender runs 3 rounds, alternated with the
others, and reports the medians of its rate and of the process's CPU time per record.

The hand-written producer is what a user writes without the SDK (`handwritten_send`): per record,
serialize the payload with fastavro / protobuf / json against the already parsed schema, build the
envelope protobuf with a fresh UUIDv7 and time, the `ce_*` headers, and `produce` with the SDK's
librdkafka settings; no validation beyond what those libraries do themselves. Two rows per size give
no goal, for information: the SDK against a raw Producer sending its pre-built records (envelope +
headers already made, the former goal's baseline) and against a raw Producer that builds the envelope
and headers per record with our own helpers from pre-serialized payloads."""

from __future__ import annotations

import datetime as dt
import functools
import io
import json
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import confluent_kafka
import fastavro
import uuid_utils
from google.protobuf import json_format

from bench import profiling
from bench.context import BenchContext
from bench.kafka_io import flush, produce_all
from bench.report import BenchResult, Row
from bench.workload import cycle, generate, prepare_records, sdk_producer
from common.config import KafkaSettings, ProducerSettings
from common.envelope import encode_envelope, make_envelope
from common.headers import metadata_to_headers
from common.topics import ingest_topic
from producers.codecs import encode_payload
from producers.kafka_config import producer_config
from producers.producer import Producer
from producers.schemas import ResolvedSchema
from producers.workload import WorkloadMessage
from proto.envelope_pb2 import Envelope, Metadata

GOAL = 0.9
SIZES = (200, 1024, 20 * 1024)
POOL = 5_000  # distinct messages per size, cycled


def raw_send(conf: dict, records: list, count: int) -> float:
    """msg/s of a raw Producer sending pre-built SDK records until every one is acknowledged."""
    producer = confluent_kafka.Producer(conf)
    produce_all(producer, records[:100])  # connect, get a producer id and metadata before the clock
    flush(producer)
    began = time.monotonic()
    produce_all(producer, cycle(records, count))
    flush(producer)
    return count / (time.monotonic() - began)


def envelope_inputs(sdk: Producer, messages: list[WorkloadMessage], records: list) -> list[tuple]:
    """Per message, what a raw sender needs to build its envelope: topic, key, the payload already
    serialized (and validated) by the SDK's codec, and the metadata fields."""
    out = []
    for m, record in zip(messages, records, strict=True):
        resolved = sdk.catalog.resolve(m.title, m.category, m.version)
        payload_format, payload = encode_payload(m.payload, resolved)
        fields = (m.title, m.category, m.version, resolved.schema_id, payload_format, payload, m.attributes)
        out.append((record.topic, record.key, *fields))
    return out


def raw_envelope_send(conf: dict, inputs: list[tuple], count: int, *, env: str, source: str) -> float:
    """msg/s of a raw Producer that builds envelope + headers per record (fresh id and time) and sends."""
    producer = confluent_kafka.Producer(conf)

    def send_all(items: Iterable[tuple]) -> None:
        produce = producer.produce
        for n, (topic, key, title, category, version, schema_id, fmt, payload, attrs) in enumerate(items):
            envelope = make_envelope(
                env=env,
                source=source,
                title=title,
                category=category,
                version=version,
                schema_id=schema_id,
                payload_format=fmt,
                payload=payload,
                producer="bench",
                attributes=attrs,
            )
            value, headers = encode_envelope(envelope), metadata_to_headers(envelope.metadata)
            while True:
                try:
                    produce(topic, value, key, headers=headers)
                    break
                except BufferError:
                    producer.poll(0.05)
            if n % 1000 == 0:
                producer.poll(0)
        flush(producer)

    send_all(inputs[:100])  # connect, get a producer id and metadata before the clock
    began = time.monotonic()
    send_all(cycle(inputs, count))
    return count / (time.monotonic() - began)


FORMAT_CODES = {"AVRO": 1, "PROTOBUF": 2, "JSON": 3}  # the envelope's PayloadFormat, by schema type
FORMAT_NAMES = {1: b"avro", 2: b"protobuf", 3: b"json", 4: b"raw"}


def _serialize(payload: object, schema: ResolvedSchema) -> tuple[int, bytes]:
    """(payload format, bytes) the way a user writes it: the library's own writer, nothing else."""
    if isinstance(payload, bytes):
        return 4, payload
    if schema.schema_type == "AVRO":
        out = io.BytesIO()
        fastavro.schemaless_writer(out, schema.avro, payload)
        return 1, out.getvalue()
    if schema.schema_type == "JSON":
        return 3, json.dumps(payload, separators=(",", ":")).encode()
    assert schema.proto is not None
    if isinstance(payload, dict):
        payload = json_format.ParseDict(payload, schema.proto.message_class())
    return 2, payload.SerializeToString()  # type: ignore[attr-defined]


def handwritten_send(
    conf: dict,
    schemas: list[ResolvedSchema],
    messages: list[WorkloadMessage],
    count: int,
    *,
    env: str,
    source: str,
    topic: str,
) -> float:
    """msg/s of a hand-written producer (no SDK): serialize + envelope + headers + produce per record,
    until every record is acknowledged. `schemas[i]` is the parsed schema of `messages[i]`."""
    producer = confluent_kafka.Producer(conf)
    produce = producer.produce

    def send(m: WorkloadMessage, schema: ResolvedSchema) -> None:
        fmt, payload = _serialize(m.payload, schema)
        message_id, now = str(uuid_utils.uuid7()), time.time_ns() // 1_000_000
        metadata = Metadata(
            message_id=message_id, env=env, source=source, title=m.title, category=m.category,
            version=m.version, schema_id=schema.schema_id, payload_format=fmt,  # type: ignore[arg-type]
            produced_at_ms=now, producer="bench", attributes=m.attributes,
        )  # fmt: skip
        value = Envelope(metadata=metadata, payload=payload).SerializeToString()
        stamp = dt.datetime.fromtimestamp(now / 1000, tz=dt.UTC).isoformat(timespec="milliseconds")
        headers: list[tuple[str, str | bytes | None]] = [
            ("ce_specversion", b"1.0"),
            ("content-type", b"application/x-protobuf; messageType=refinery.envelope.v1.Envelope"),
            ("ce_id", message_id.encode()), ("ce_env", env.encode()), ("ce_source", source.encode()),
            ("ce_title", m.title.encode()), ("ce_type", m.category.encode()),
            ("ce_version", str(m.version).encode()), ("ce_schemaid", str(schema.schema_id).encode()),
            ("ce_format", FORMAT_NAMES[fmt]), ("ce_time", stamp.replace("+00:00", "Z").encode()),
            ("ce_producer", b"bench"),
            *((f"attr.{k}", v.encode()) for k, v in sorted(m.attributes.items())),
        ]  # fmt: skip
        while True:
            try:
                produce(topic, value, m.key, headers=headers)
                return
            except BufferError:
                producer.poll(0.05)

    for i in range(100):  # connect, get a producer id and metadata before the clock
        send(messages[i % len(messages)], schemas[i % len(messages)])
    flush(producer)
    began = time.monotonic()
    for i in range(count):
        send(messages[i % len(messages)], schemas[i % len(messages)])
        if i % 1000 == 0:
            producer.poll(0)
    flush(producer)
    return count / (time.monotonic() - began)


def sdk_send(sdk: Producer, messages: list[WorkloadMessage], count: int) -> float:
    """msg/s of `Producer.send` (encode + envelope + headers + queue) until every record is acknowledged."""
    send = sdk.send
    began = time.monotonic()
    for i in range(count):
        m = messages[i % len(messages)]
        send(m.title, m.category, m.version, m.payload, key=m.key, attributes=m.attributes)
    sdk.flush()
    return count / (time.monotonic() - began)


@dataclass(frozen=True)
class Figure:
    """One contender's round: its rate and the process's CPU time per record (the process runs one
    contender at a time, so its CPU is that contender's: Python and librdkafka's threads)."""

    rate: float
    cpu_us: float


def measure(send: Callable[[], float], count: int) -> Figure:
    began = time.process_time()
    rate = send()
    return Figure(rate, (time.process_time() - began) / count * 1e6)


def median(figures: list[Figure]) -> Figure:
    return Figure(statistics.median(f.rate for f in figures), statistics.median(f.cpu_us for f in figures))


def run(ctx: BenchContext) -> BenchResult:
    counts = {
        200: ctx.pick(4_000, 100_000),
        1024: ctx.pick(4_000, 100_000),
        20 * 1024: ctx.pick(1_000, 20_000),
    }
    rounds = ctx.pick(1, 3)
    source = ctx.name("producer").replace("-", "")
    topic = ingest_topic("prod", source)
    settings = ProducerSettings(env="prod", source=source, producer_id="bench")
    conf = producer_config(KafkaSettings(bootstrap_servers=ctx.bootstrap), settings)
    result = BenchResult(
        name="producer",
        title=__doc__.split("\n")[0],
        params={
            "counts": counts,
            "distinct_messages": POOL,
            "topic": "one ingest topic, 12 partitions",
            "rounds": rounds,
            "figures": "medians of the rounds, contenders alternated in each round",
        },
        baseline={
            "description": "raw confluent-kafka Producer sending the SDK's pre-built records "
            "(envelope + headers) with the SDK's librdkafka settings",
            "settings": {k: v for k, v in conf.items() if not k.startswith(("sasl", "ssl"))},
            "handwritten_rows": "a hand-written producer (no SDK) serializing with fastavro/protobuf/json, "
            "building envelope + headers and producing per record, same librdkafka settings (the goal's "
            "baseline since issue 14)",
            "envelope_rows": "raw confluent-kafka Producer building the envelope + headers per record "
            "(make_envelope, encode_envelope, metadata_to_headers, produce) from pre-serialized payloads",
        },
    )
    sdk = sdk_producer(ctx.bootstrap, env="prod", source=source)
    try:
        for size in SIZES:
            count = counts[size]
            messages = generate(min(POOL, count), size, seed=size)
            records = prepare_records(sdk, messages, fixed_topic=True)  # also creates the topic
            inputs = envelope_inputs(sdk, messages, records)
            schemas = [sdk.catalog.resolve(m.title, m.category, m.version) for m in messages]
            contenders: dict[str, Callable[[], float]] = {
                "raw": functools.partial(raw_send, conf, records, count),
                "sdk": functools.partial(sdk_send, sdk, messages, count),
                "hand": functools.partial(
                    handwritten_send, conf, schemas, messages, count, env="prod", source=source, topic=topic
                ),
                "envelope": functools.partial(
                    raw_envelope_send, conf, inputs, count, env="prod", source=source
                ),
            }
            runs: dict[str, list[Figure]] = {name: [] for name in contenders}
            for _ in range(rounds):  # alternated, so the machine's moods hit every contender alike
                for name, send in contenders.items():
                    runs[name].append(measure(send, count))
            sdk_figure, hand = median(runs["sdk"]), median(runs["hand"])
            base, with_envelope = median(runs["raw"]), median(runs["envelope"])
            ctx.log(
                f"producer {size} B rounds (msg/s): "
                + "; ".join(f"{n} " + ", ".join(f"{f.rate:,.0f}" for f in runs[n]) for n in runs)
            )
            if ctx.profile:
                again = functools.partial(sdk_send, sdk, messages, count)
                profiling.cprofiled(ctx.profile_path(f"producer-sdk-{size}").with_suffix(".txt"), again)
            cpu = f"{sdk_figure.cpu_us:.1f} us CPU/record vs {hand.cpu_us:.1f}"
            result.add(
                Row(
                    case=f"send {size} B vs a hand-written producer",
                    value=sdk_figure.rate,
                    unit="msg/s",
                    baseline=hand.rate,
                    goal=f">= {GOAL}x",
                    goal_met=sdk_figure.rate / hand.rate >= GOAL,
                    note=cpu,
                )
            )
            result.add(
                Row(
                    case=f"send {size} B: CPU per record vs the hand-written producer's",
                    value=sdk_figure.cpu_us,
                    unit="us",
                    baseline=hand.cpu_us,
                    higher_is_better=False,
                    note="informative, no goal",
                )
            )
            result.add(
                Row(
                    case=f"send {size} B vs raw produce of pre-built bytes",
                    value=sdk_figure.rate,
                    unit="msg/s",
                    baseline=base.rate,
                    note="informative, no goal (the goal before issue 14)",
                )
            )
            result.add(
                Row(
                    case=f"send {size} B vs raw + envelope per record",
                    value=sdk_figure.rate,
                    unit="msg/s",
                    baseline=with_envelope.rate,
                    note="informative, no goal",
                )
            )
    finally:
        sdk.close()
        ctx.delete_topics([topic])
    return result
