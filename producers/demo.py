"""`refinery-demo`: a realistic producer of the reference workload (`producers.workload`).

    refinery-demo --register --rate 500 --duration 60     # register the schemas, then 500 msg/s for 60 s
    refinery-demo --count 10000 --rate 0                   # as fast as possible, 10,000 messages

Messages go to the ingest topic of their (env, source) through the SDK, so every one is validated,
enveloped and keyed by its match id. Prints one JSON summary line at the end. With `--metrics-port`
(or REFINERY_PRODUCER_METRICS_PORT) it serves the SDK's Prometheus metrics (`producers.metrics`) at
/metrics while it runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence

from confluent_kafka.schema_registry.error import SchemaRegistryError
from prometheus_client import start_http_server

from common.config import KafkaSettings, ProducerSettings, RegistrySettings
from common.errors import InvalidInputError, RefineryError
from common.logs import configure_logging
from producers.metrics import default_metrics
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
    parser.add_argument(
        "--metrics-port", type=int, help="serve Prometheus /metrics on this port (default from settings)"
    )
    return parser


@contextlib.contextmanager
def metrics_server(settings: ProducerSettings) -> Iterator[None]:
    """Serve prometheus-client's default registry (with the SDK's metrics) while the demo runs."""
    if settings.metrics_port is None:
        yield
        return
    default_metrics()  # registered before the first scrape: every series name is there from the start
    server, thread = start_http_server(settings.metrics_port, addr=settings.metrics_host)
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def run(args: argparse.Namespace) -> dict[str, object]:
    kafka = KafkaSettings(bootstrap_servers=args.bootstrap) if args.bootstrap else KafkaSettings()
    registry = RegistrySettings(url=args.registry_url) if args.registry_url else RegistrySettings()
    overrides = {} if args.metrics_port is None else {"metrics_port": args.metrics_port}
    settings = ProducerSettings(registry_timeout_s=args.timeout, **overrides)
    counts: Counter[str] = Counter()
    started = time.monotonic()
    with metrics_server(settings), Producer(settings, kafka=kafka, registry=registry) as producer:
        producer.check_connection(args.timeout)
        if args.register:
            register_workload(producer.catalog)
        sent = send_workload(producer, args, counts, started)
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


def send_workload(producer: Producer, args: argparse.Namespace, counts: Counter[str], started: float) -> int:
    """Send generated messages at `args.rate` until `args.count` or `args.duration`; how many were sent."""
    size: int | str | None = args.payload_size
    if isinstance(size, str) and size != "mixed":
        size = int(size)
    generator = WorkloadGenerator(seed=args.seed, payload_size=size)
    interval = 1.0 / args.rate if args.rate > 0 else 0.0
    next_at = time.monotonic()
    sent = 0
    while True:
        if args.count is not None and sent >= args.count:
            return sent
        if args.duration is not None and time.monotonic() - started >= args.duration:
            return sent
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
