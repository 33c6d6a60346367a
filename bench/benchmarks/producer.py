"""Benchmark 1: Producer SDK send throughput vs a raw confluent-kafka Producer sending the same final
bytes (envelope + headers) with the same settings, for 200 B, 1 KB and 20 KB payloads. Goal >= 0.9x."""

from __future__ import annotations

import functools
import time

import confluent_kafka

from bench import profiling
from bench.context import BenchContext
from bench.kafka_io import flush, produce_all
from bench.report import BenchResult, Row
from bench.workload import cycle, generate, prepare_records, sdk_producer
from common.config import KafkaSettings, ProducerSettings
from common.topics import ingest_topic
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
        },
    )
    sdk = sdk_producer(ctx.bootstrap, env="prod", source=source)
    try:
        for size in SIZES:
            messages = generate(min(POOL, counts[size]), size, seed=size)
            records = prepare_records(sdk, messages, fixed_topic=True)  # also creates the topic
            base = raw_send(conf, records, counts[size])
            value = sdk_send(sdk, messages, counts[size])
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
    finally:
        sdk.close()
        ctx.delete_topics([topic])
    return result
