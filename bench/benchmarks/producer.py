"""Benchmark 1: Producer SDK send throughput vs a raw confluent-kafka Producer sending the same final
bytes (envelope + headers) with the same settings, for 200 B, 1 KB and 20 KB payloads. Goal >= 0.9x.

Per size, an extra row without a goal compares the same SDK figure with a raw Producer that builds the
envelope and headers per record itself (payloads pre-serialized), to show how much of the gap is the
per-record envelope work every sender must do and how much is the SDK's own overhead."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable

import confluent_kafka

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
from producers.workload import WorkloadMessage

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


def sdk_send(sdk: Producer, messages: list[WorkloadMessage], count: int) -> float:
    """msg/s of `Producer.send` (encode + envelope + headers + queue) until every record is acknowledged."""
    send = sdk.send
    began = time.monotonic()
    for i in range(count):
        m = messages[i % len(messages)]
        send(m.title, m.category, m.version, m.payload, key=m.key, attributes=m.attributes)
    sdk.flush()
    return count / (time.monotonic() - began)


def run(ctx: BenchContext) -> BenchResult:
    counts = {
        200: ctx.pick(4_000, 100_000),
        1024: ctx.pick(4_000, 100_000),
        20 * 1024: ctx.pick(1_000, 20_000),
    }
    source = ctx.name("producer").replace("-", "")
    topic = ingest_topic("prod", source)
    settings = ProducerSettings(env="prod", source=source, producer_id="bench")
    conf = producer_config(KafkaSettings(bootstrap_servers=ctx.bootstrap), settings)
    result = BenchResult(
        name="producer",
        title=__doc__.split("\n")[0],
        params={"counts": counts, "distinct_messages": POOL, "topic": "one ingest topic, 12 partitions"},
        baseline={
            "description": "raw confluent-kafka Producer sending the SDK's pre-built records "
            "(envelope + headers) with the SDK's librdkafka settings",
            "settings": {k: v for k, v in conf.items() if not k.startswith(("sasl", "ssl"))},
            "envelope_rows": "raw confluent-kafka Producer building the envelope + headers per record "
            "(make_envelope, encode_envelope, metadata_to_headers, produce) from pre-serialized payloads",
        },
    )
    sdk = sdk_producer(ctx.bootstrap, env="prod", source=source)
    try:
        for size in SIZES:
            messages = generate(min(POOL, counts[size]), size, seed=size)
            records = prepare_records(sdk, messages, fixed_topic=True)  # also creates the topic
            inputs = envelope_inputs(sdk, messages, records)
            base = raw_send(conf, records, counts[size])
            value = sdk_send(sdk, messages, counts[size])
            with_envelope = raw_envelope_send(conf, inputs, counts[size], env="prod", source=source)
            if ctx.profile:
                again = functools.partial(sdk_send, sdk, messages, counts[size])
                profiling.cprofiled(ctx.profile_path(f"producer-sdk-{size}").with_suffix(".txt"), again)
            result.add(
                Row(
                    case=f"send {size} B",
                    value=value,
                    unit="msg/s",
                    baseline=base,
                    goal=f">= {GOAL}x",
                    goal_met=value / base >= GOAL,
                )
            )
            result.add(
                Row(
                    case=f"send {size} B vs raw + envelope per record",
                    value=value,
                    unit="msg/s",
                    baseline=with_envelope,
                    note="informative, no goal",
                )
            )
    finally:
        sdk.close()
        ctx.delete_topics([topic])
    return result
