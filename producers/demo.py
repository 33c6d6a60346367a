"""`refinery-demo`: a realistic producer of the reference workload (`producers.workload`).

    refinery-demo --register --rate 500 --duration 60     # register the schemas, then 500 msg/s for 60 s
    refinery-demo --count 10000 --rate 0                   # as fast as possible, 10,000 messages

Messages go to the ingest topic of their (env, source) through the SDK, so every one is validated,
enveloped and keyed by its match id. Prints one JSON summary line at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence

from confluent_kafka.schema_registry.error import SchemaRegistryError

from common.config import KafkaSettings, ProducerSettings, RegistrySettings
from common.errors import InvalidInputError, RefineryError
from common.logs import configure_logging
from producers.producer import Producer
from producers.workload import WorkloadGenerator, register_workload


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="refinery-demo", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (default from settings)")
    parser.add_argument("--registry-url", help="schema registry URL (default from settings)")
    parser.add_argument("--rate", type=float, default=100.0, help="messages per second; 0 = unthrottled")
    stop = parser.add_mutually_exclusive_group()
    stop.add_argument("--count", type=int, help="stop after this many messages")
    stop.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument("--register", action="store_true", help="register the workload's schemas first")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--payload-size", default=None, help="bytes per payload, or 'mixed' (default natural)"
    )
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for a service")
    parser.add_argument(
        "--env-prefix", default="", help="prefix every env name (isolated test or trial runs)"
    )
    return parser


def run(args: argparse.Namespace) -> dict[str, object]:
    kafka = KafkaSettings(bootstrap_servers=args.bootstrap) if args.bootstrap else KafkaSettings()
    registry = RegistrySettings(url=args.registry_url) if args.registry_url else RegistrySettings()
    size: int | str | None = args.payload_size
    if isinstance(size, str) and size != "mixed":
        size = int(size)
    generator = WorkloadGenerator(seed=args.seed, payload_size=size)
    settings = ProducerSettings(registry_timeout_s=args.timeout)
    counts: Counter[str] = Counter()
    started = time.monotonic()
    with Producer(settings, kafka=kafka, registry=registry) as producer:
        producer.check_connection(args.timeout)
        if args.register:
            register_workload(producer.catalog)
        interval = 1.0 / args.rate if args.rate > 0 else 0.0
        next_at = time.monotonic()
        sent = 0
        while True:
            if args.count is not None and sent >= args.count:
                break
            if args.duration is not None and time.monotonic() - started >= args.duration:
                break
            msg = generator.next()
            producer.send(
                msg.title,
                msg.category,
                msg.version,
                msg.payload,
                key=msg.key,
                attributes=msg.attributes,
                env=args.env_prefix + msg.env,
                source=msg.source,
            )
            counts[f"{args.env_prefix}{msg.env}.{msg.source}"] += 1
            sent += 1
            if interval:
                next_at += interval
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        producer.flush()
        stats = producer.stats
    elapsed = time.monotonic() - started
    return {
        "sent": sent,
        "delivered": stats.delivered,
        "failed": stats.failed,
        "seconds": round(elapsed, 2),
        "by_ingest": dict(counts),
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging()
    try:
        summary = run(args)
    except InvalidInputError as exc:
        print(f"refinery-demo: {exc}", file=sys.stderr)
        return 2
    except (RefineryError, SchemaRegistryError) as exc:
        print(f"refinery-demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    print(json.dumps(summary))
    return 0 if summary["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
