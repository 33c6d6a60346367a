"""`refinery-client`: register schemas, produce JSON lines, tail decoded records, verify the contract.

    refinery-client register schemas/kill.avsc --title 1234 --category player_killed [--version 2]
    refinery-client register schemas/kill.avsc --subject 1234.player_killed-value --type AVRO
    echo '{"match_id": "m-1", ...}' | refinery-client produce --title 1234 --category match_started \\
        --version 1 --env dev --source telemetry --attr platform=pc
    refinery-client tail prod.telemetry.ingest.all-v1 --offset beginning -e --where title=12* \
        --where attribute.platform=pc [--partition 3] [--from-time 2026-11-30T10:00:00Z] [--format table]
    refinery-client topics ['prod.*']
    refinery-client verify prod.telemetry.ingest.all-v1 [--max 1000] [--no-registry]

`tail` follows kcat: `--offset beginning|end|N|-N` (default end), `--from-time` (ISO 8601 or epoch
milliseconds), `--partition N` (repeatable), `-e/--exit-at-end`, `--format jsonl|json|table|raw`
(`producers.browse`), `--where FIELD=VALUE` in the route-set syntax (`producers.where`: env, title with a
glob, attribute.platform, ...; an unknown field exits 2). `topics` lists derived topics with record
counts. `produce --env E` refuses an env outside the configured set (REFINERY_PRODUCER_ALLOWED_ENVS,
default prod and dev, the envs the route sets route) unless `--allow-env` is given.

`verify` reads the topics from the beginning to their current end and prints every violation of the
envelope contract (docs/contract.md) as a JSON line (rule, level, the worker's DLQ reason, message,
partition, offset), then a summary line.
Connection flags default to the settings (`REFINERY_KAFKA_BOOTSTRAP_SERVERS`, `REFINERY_REGISTRY_URL`).
Exit codes: 0 success, 1 a service is unreachable or failed, 2 bad input (the message says what to fix),
3 `verify` found violations of MUST rules.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import fnmatch
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from confluent_kafka.schema_registry.error import SchemaRegistryError

from common.config import KafkaSettings, ProducerSettings, RegistrySettings
from common.errors import InvalidInputError, RefineryError
from common.kafka_log import kafka_unreachable
from common.logs import configure_logging
from common.registry_client import check_registry_url
from common.times import parse_time_ms
from common.topics import validate_component
from producers.browse import FORMATS, derived_topic_counts, write_records
from producers.errors import BrokerUnavailableError
from producers.producer import Producer
from producers.reader import Reader, parse_offset
from producers.schemas import SCHEMA_TYPES, SchemaCatalog
from producers.verify import Report, verify_topics
from producers.where import compile_where

EXIT_OK, EXIT_UNAVAILABLE, EXIT_BAD_INPUT, EXIT_VIOLATIONS = 0, 1, 2, 3
DEFAULT_ENVS = ("prod", "dev")  # the envs of the reference route set (refinery/routes/workload.yaml)
_TYPE_BY_SUFFIX = {".avsc": "AVRO", ".proto": "PROTOBUF", ".json": "JSON"}


def _settings(args: argparse.Namespace) -> tuple[KafkaSettings, RegistrySettings]:
    kafka = KafkaSettings(bootstrap_servers=args.bootstrap) if args.bootstrap else KafkaSettings()
    registry = RegistrySettings(url=args.registry_url) if args.registry_url else RegistrySettings()
    return kafka, registry


def _check_services(args: argparse.Namespace) -> None:
    """Fail in one line, before any client is built: a registry URL that is not http(s) (ConfigError),
    a Kafka cluster that accepts no TCP connection (BrokerUnavailableError naming address and cause)."""
    kafka, registry = _settings(args)
    check_registry_url(registry.url)
    if args.command != "register":
        problem = kafka_unreachable(kafka.bootstrap_servers, timeout_s=min(args.timeout, 2.0))
        if problem is not None:
            raise BrokerUnavailableError(problem)


def _catalog(args: argparse.Namespace) -> SchemaCatalog:
    return SchemaCatalog.from_settings(_settings(args)[1], timeout_s=args.timeout)


def cmd_register(args: argparse.Namespace, out: TextIO) -> int:
    path = Path(args.schema_file)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(f"cannot read schema file {path}: {exc.strerror}") from None
    schema_type = (args.type or _TYPE_BY_SUFFIX.get(path.suffix.lower(), "")).upper()
    if schema_type not in SCHEMA_TYPES:
        raise InvalidInputError(f"cannot tell the schema type of {path.name}: pass --type AVRO|PROTOBUF|JSON")
    catalog = _catalog(args)
    try:
        if args.subject:
            registered = catalog.register_subject(args.subject, text, schema_type)
            answer = {"subject": args.subject, "id": registered.schema_id, "version": registered.version}
        else:
            if not (args.title and args.category):
                raise InvalidInputError("give --subject, or --title and --category")
            resolved = catalog.register(args.title, args.category, text, schema_type, version=args.version)
            answer = {"subject": resolved.subject, "id": resolved.schema_id, "version": resolved.version}
    finally:
        catalog.close()
    print(json.dumps(answer), file=out)
    return EXIT_OK


def _payload(line: str, number: int, raw: bool) -> Any:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"line {number}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    if raw:
        if not isinstance(value, str):
            raise InvalidInputError(f"line {number}: with --raw each line must be a JSON string of base64")
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error:
            raise InvalidInputError(f"line {number}: not valid base64") from None
    if not isinstance(value, dict):
        raise InvalidInputError(f"line {number}: each line must be a JSON object (the payload)")
    return value


def cmd_produce(args: argparse.Namespace, out: TextIO, stdin: TextIO) -> int:
    kafka, registry = _settings(args)
    overrides: dict[str, Any] = {"registry_timeout_s": args.timeout, "block_timeout_s": args.timeout}
    if args.env:
        overrides["env"] = args.env
    if args.source:
        overrides["source"] = args.source
    settings = ProducerSettings(**overrides)
    check_env(settings, allow=args.allow_env)
    if args.allow_env:
        settings = settings.model_copy(update={"allowed_envs": None})
    attributes = dict(parse_attr(a) for a in args.attr)
    sent = 0
    with Producer(settings, kafka=kafka, registry=registry) as producer:
        producer.check_connection(args.timeout)
        producer.catalog.resolve(args.title, args.category, args.version)  # fail before reading stdin
        futures = []
        for number, line in enumerate(stdin, start=1):
            if not line.strip():
                continue
            try:
                payload = _payload(line, number, args.raw)
                futures.append(
                    producer.send(
                        args.title, args.category, args.version, payload, key=args.key, attributes=attributes
                    )
                )
            except InvalidInputError as exc:
                message = str(exc) if str(exc).startswith("line ") else f"line {number}: {exc}"
                raise InvalidInputError(f"{message} (the {len(futures)} lines before it were sent)") from None
        producer.flush(args.timeout * 6)
        for future in futures:
            future.result()
            sent += 1
    print(json.dumps({"sent": sent, "topic": f"{settings.env}.{settings.source}.ingest.all-v1"}), file=out)
    return EXIT_OK


def check_env(settings: ProducerSettings, *, allow: bool) -> None:
    """InvalidInputError unless the env is one the pipeline routes (or `allow`)."""
    validate_component("env", settings.env)
    known = settings.allowed_envs or list(DEFAULT_ENVS)
    if not allow and settings.env not in known:
        raise InvalidInputError(
            f"env {settings.env!r} is not one of the configured envs ({', '.join(sorted(known))}; "
            "REFINERY_PRODUCER_ALLOWED_ENVS): nothing routes its records; pass --allow-env to send anyway"
        )


def parse_attr(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise InvalidInputError(f"attribute {text!r} must look like NAME=VALUE, e.g. platform=pc")
    return name, value


def cmd_tail(args: argparse.Namespace, out: TextIO) -> int:
    kafka, _ = _settings(args)
    where = compile_where(args.where)  # bad input first: before any service is asked
    offset = parse_offset(args.offset or ("beginning" if args.from_beginning else "end"))
    from_time_ms = parse_time_ms(args.from_time, option="--from-time") if args.from_time else None
    catalog = _catalog(args)
    try:
        catalog.ping()
        with Reader(
            args.topics,
            catalog=catalog,
            kafka=kafka,
            offset=offset,
            partitions=args.partition,
            from_time_ms=from_time_ms,
            where=where,
            timeout_s=args.timeout,
        ) as reader:
            records = reader.records(
                max_records=args.max, idle_timeout_s=args.idle_timeout, exit_at_end=args.exit_at_end
            )
            write_records(records, args.format, out)
    finally:
        catalog.close()
    return EXIT_OK


def cmd_topics(args: argparse.Namespace, out: TextIO) -> int:
    kafka, _ = _settings(args)
    counts = [
        c for c in derived_topic_counts(kafka, timeout_s=args.timeout)
        if not args.patterns or any(fnmatch.fnmatchcase(c.topic, p) for p in args.patterns)
    ]  # fmt: skip
    if args.format == "jsonl":
        for c in counts:
            out.write(json.dumps({"topic": c.topic, "partitions": c.partitions, "records": c.records}) + "\n")
        return EXIT_OK
    width = max([len("TOPIC"), *(len(c.topic) for c in counts)])
    out.write(f"{'TOPIC':<{width}}  PARTITIONS  RECORDS\n")
    for c in counts:
        out.write(f"{c.topic:<{width}}  {c.partitions:>10}  {c.records:>7}\n")
    return EXIT_OK


def cmd_verify(args: argparse.Namespace, out: TextIO) -> int:
    kafka, _ = _settings(args)
    catalog = None if args.no_registry else _catalog(args)
    report = Report()
    try:
        if catalog is not None:
            catalog.ping()
        for item in verify_topics(
            args.topics, kafka=kafka, catalog=catalog, max_records=args.max, timeout_s=args.timeout
        ):
            if isinstance(item, Report):
                report = item
            else:
                out.write(json.dumps(item.to_dict(), ensure_ascii=False) + "\n")
    finally:
        if catalog is not None:
            catalog.close()
    out.write(json.dumps({"summary": report.summary()}) + "\n")
    return EXIT_VIOLATIONS if report.must_violations else EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="refinery-client", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (default from settings)")
    parser.add_argument("--registry-url", help="schema registry URL (default from settings)")
    parser.add_argument(
        "--timeout", type=float, default=5.0, help="seconds to wait for a service (default 5)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    reg = sub.add_parser("register", help="register a schema file")
    reg.add_argument("schema_file")
    reg.add_argument("--subject", help="any subject name (instead of --title/--category)")
    reg.add_argument("--title")
    reg.add_argument("--category")
    reg.add_argument("--version", type=int, help="refuse unless the schema becomes this version")
    reg.add_argument("--type", choices=SCHEMA_TYPES, type=str.upper, help="default: from the file suffix")

    prod = sub.add_parser("produce", help="send JSON lines from stdin as payloads")
    prod.add_argument("--title", required=True)
    prod.add_argument("--category", required=True)
    prod.add_argument("--version", type=int, required=True)
    prod.add_argument("--env")
    prod.add_argument("--source")
    prod.add_argument("--key", help="record key for every line (default: the payload's match_id/player_id)")
    prod.add_argument("--attr", action="append", default=[], metavar="NAME=VALUE")
    prod.add_argument("--raw", action="store_true", help="each line is a JSON string of base64 bytes")
    prod.add_argument(
        "--allow-env", action="store_true", help="send even if --env is not one of the configured envs"
    )

    tail = sub.add_parser("tail", help="print decoded records of topics (kcat's habits)")
    tail.add_argument("topics", nargs="+", metavar="TOPIC")
    tail.add_argument("-o", "--offset", help="beginning, end (default), N or -N (N before the end)")
    tail.add_argument("--from-beginning", action="store_true", help="same as --offset beginning")
    tail.add_argument(
        "--from-time", help="start at this time: ISO 8601, epoch milliseconds or a duration before now (15m)"
    )
    tail.add_argument("-p", "--partition", type=int, action="append", help="only this partition (repeatable)")
    tail.add_argument("-e", "--exit-at-end", action="store_true", help="stop at the end of every partition")
    tail.add_argument("--format", choices=FORMATS, default="jsonl", help="output format (default jsonl)")
    tail.add_argument("--max", type=int, help="stop after N records")
    tail.add_argument(
        "--where", action="append", default=[], metavar="FIELD=VALUE",
        help="route-set field filter: env=prod, title=12*, attribute.platform=pc, category!=purchase",
    )  # fmt: skip
    tail.add_argument("--idle-timeout", type=float, help="stop after this many seconds without a record")

    topics = sub.add_parser("topics", help="list derived topics with their record counts")
    topics.add_argument("patterns", nargs="*", metavar="GLOB", help="only topics matching one of these")
    topics.add_argument("--format", choices=("table", "jsonl"), default="table")

    verify = sub.add_parser("verify", help="check the records of ingest topics against the envelope contract")
    verify.add_argument("topics", nargs="+", metavar="TOPIC")
    verify.add_argument("--max", type=int, help="stop after N records")
    verify.add_argument(
        "--no-registry", action="store_true", help="skip the schema rules (no registry look-ups)"
    )
    return parser


def main(
    argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stdin: TextIO | None = None
) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(level="WARNING")
    out = stdout or sys.stdout
    try:
        _check_services(args)
        if args.command == "register":
            return cmd_register(args, out)
        if args.command == "produce":
            return cmd_produce(args, out, stdin or sys.stdin)
        if args.command == "verify":
            return cmd_verify(args, out)
        if args.command == "topics":
            return cmd_topics(args, out)
        return cmd_tail(args, out)
    except InvalidInputError as exc:
        print(f"refinery-client: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (RefineryError, SchemaRegistryError) as exc:
        print(f"refinery-client: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except KeyboardInterrupt:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
