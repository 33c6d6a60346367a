"""Reconcile what was sent with what the derived topics and the dead-letter topic hold.

For each sent (ingest) record the checker works out, from the route set alone (`refinery.routing.router`) and
the same pre-routing checks the worker applies (`refinery.routing.guards`), where it must end up: the derived
topics of its matching routes, a dead letter (with a reason), or nowhere (unmatched). It then reads every
derived topic and the DLQ back and counts, per message id and topic:

- lost: expected copies that are not there;
- duplicated: copies beyond the expected number (a route with `dedup` expects one per message id);
- misrouted: copies in a topic the route set does not send that message to (or of an unknown id).

Dead letters are matched by the ingest coordinates they carry (`__refinery.errors.topic/partition/
offset`), so records without a message id (random bytes) are reconciled too.

    refinery-reconcile --routes refinery/routes/workload.yaml            # or the live set on the routes topic
    refinery-reconcile --ingest-pattern '^prod\\.telemetry\\.ingest\\.all-v1$' --json

Run it when the workers have caught up (consumer lag 0): records still waiting in an ingest topic count
as lost. It checks one route set; after a live route change, records routed by the old set look misrouted.
A long run prints a progress line to stderr every few seconds (`--progress-every`, 0 for none): records
read, topics done, elapsed time; stdout keeps only the report (`--json` stays parseable).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition

from common import headers as h
from common.config import KafkaSettings, RegistrySettings, WorkerSettings
from common.errors import RefineryError, TopicNameError
from common.headers import Headers, RawHeaders
from common.topics import is_ingest_topic
from refinery.routing import dlq
from refinery.routing.guards import RecordGuard, Rejection, topic_env
from refinery.routing.router import Router, RoutingError, compile_router
from refinery.routing.schema_check import SchemaIdChecker

Coordinate = tuple[str, int, int]  # ingest topic, partition, offset


class ReconcileError(RefineryError):
    """The topics could not be read back (the message says which and why)."""


@dataclass
class ReconcileReport:
    sent: int = 0
    expected_deliveries: int = 0
    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    misrouted: int = 0
    unmatched: int = 0
    dlq_expected: int = 0
    dlq_found: int = 0
    dlq_lost: int = 0
    dlq_duplicated: int = 0
    dlq_unexpected: int = 0
    dlq_reasons: dict[str, int] = field(default_factory=dict)
    duplicated_by_topic: dict[str, int] = field(default_factory=dict)
    lost_by_topic: dict[str, int] = field(default_factory=dict)  # derived topic -> copies missing there
    examples: dict[str, list[str]] = field(default_factory=dict)  # a few message ids per problem

    @property
    def clean(self) -> bool:
        """Nothing lost, duplicated or misrouted, and every expected dead letter (once) in the DLQ."""
        problems = (self.lost, self.duplicated, self.misrouted, self.dlq_lost, self.dlq_duplicated)
        return not any(problems) and not self.dlq_unexpected

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "clean": self.clean}


class Reconciler:
    """Feed it the sent records (`expect`), then the derived and dead-letter records (`observe_*`)."""

    def __init__(
        self,
        router: Router,
        *,
        max_record_bytes: int = WorkerSettings.model_fields["max_record_bytes"].default,
        schema_checker: SchemaIdChecker | None = None,
        dlq_unmatched: bool = False,
        allowed_envs: Iterable[str] | None = None,
        verify_envelope: bool = WorkerSettings.model_fields["verify_envelope"].default,
    ) -> None:
        self.router = router
        self._allowed_envs = {e.encode() for e in allowed_envs} if allowed_envs else None
        self._guard = RecordGuard(
            max_record_bytes=max_record_bytes, schema_checker=schema_checker, verify_envelope=verify_envelope
        )
        self._dlq_unmatched = dlq_unmatched
        self._expected: Counter[tuple[bytes, str]] = Counter()  # (message id, topic) -> copies
        self._dedup: set[tuple[bytes, str]] = set()
        self._found: Counter[tuple[bytes, str]] = Counter()
        self._dead_expected: Counter[Coordinate] = Counter()
        self._dead_found: Counter[Coordinate] = Counter()
        self._reasons: Counter[str] = Counter()
        self._ingest_topics: set[str] = set()
        self.report = ReconcileReport()

    @property
    def expected_topics(self) -> set[str]:
        return {topic for _, topic in self._expected}

    def expect(
        self,
        coordinate: Coordinate,
        value: bytes | None,
        headers: Headers | None,
        record_key: bytes | None = None,
    ) -> None:
        """One record acknowledged on an ingest topic at `coordinate`."""
        self.report.sent += 1
        topic = coordinate[0]
        self._ingest_topics.add(topic)
        try:
            hdrs = self._guard.check(topic, value, headers, record_key)
        except Rejection:
            self._dead_expected[coordinate] += 1
            return
        try:
            destinations = list(self.router.route(hdrs))
        except RoutingError as exc:
            self._dead_expected[coordinate] += 1
            destinations = list(exc.partial)
            if not destinations:
                return
        if not destinations:
            self.report.unmatched += 1
            if self._dlq_unmatched:
                self._dead_expected[coordinate] += 1
            return
        env, message_id = hdrs[h.ENV], hdrs[h.MESSAGE_ID]
        for dest in destinations:
            try:
                dest_env = topic_env(dest.topic)
            except TopicNameError:
                dest_env = b""
            allowed = self._allowed_envs is None or dest_env in self._allowed_envs
            if (
                dest_env != env or not allowed
            ):  # the worker dead-letters this copy (topic_rejected / env_mismatch)
                self._dead_expected[coordinate] += 1
                continue
            key = (message_id, dest.topic)
            if dest.dedup:
                self._dedup.add(key)
            self._expected[key] += 1

    def observe_derived(self, topic: str, headers: RawHeaders) -> None:
        raw = _pairs(headers).get(h.MESSAGE_ID)
        message_id = raw.encode() if isinstance(raw, str) else (raw or b"")
        self._found[(message_id, topic)] += 1

    def observe_dead_letter(self, headers: RawHeaders) -> None:
        """One DLQ record; those from ingest topics no sent record came from are not ours and skipped."""
        errors = {k: v for k, v in _pairs(headers).items() if k.startswith(dlq.ERROR_HEADER_PREFIX)}

        def text(name: str) -> str:
            value = errors.get(name) or b""
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else value

        try:
            coordinate = (text(dlq.TOPIC), int(text(dlq.PARTITION)), int(text(dlq.OFFSET)))
        except ValueError:
            coordinate = ("", -1, -1)  # not written by a worker: unexpected below
        if coordinate[0] and coordinate[0] not in self._ingest_topics:
            return
        self._dead_found[coordinate] += 1
        self._reasons[text(dlq.REASON)] += 1

    def finish(self) -> ReconcileReport:
        r = self.report
        examples: dict[str, list[str]] = {}

        def note(kind: str, message_id: bytes) -> None:
            bucket = examples.setdefault(kind, [])
            if len(bucket) < 5:
                bucket.append(message_id.decode("utf-8", "replace"))

        expected_ids = {message_id for message_id, _ in self._expected}
        for key, want in self._expected.items():
            if key in self._dedup:
                want = 1
            r.expected_deliveries += want
            got = self._found.get(key, 0)
            r.delivered += min(got, want)
            if got < want:
                r.lost += want - got
                r.lost_by_topic[key[1]] = r.lost_by_topic.get(key[1], 0) + want - got
                note("lost", key[0])
            elif got > want:
                r.duplicated += got - want
                r.duplicated_by_topic[key[1]] = r.duplicated_by_topic.get(key[1], 0) + got - want
                note("duplicated", key[0])
        for key, got in self._found.items():
            if key not in self._expected:
                r.misrouted += got
                note("misrouted" if key[0] in expected_ids else "unknown_id", key[0])
        r.dlq_expected = sum(self._dead_expected.values())
        r.dlq_found = sum(self._dead_found.values())
        for coordinate, want in self._dead_expected.items():
            got = self._dead_found.get(coordinate, 0)
            r.dlq_lost += max(want - got, 0)
            r.dlq_duplicated += max(got - want, 0)
        r.dlq_unexpected = sum(n for c, n in self._dead_found.items() if c not in self._dead_expected)
        r.dlq_reasons = dict(sorted(self._reasons.items()))
        r.examples = examples
        return r


def _pairs(headers: RawHeaders) -> dict[str, bytes | str | None]:
    """Headers as a dict (the last of duplicated names wins: only our own, unique headers are read)."""
    return dict(headers.items() if isinstance(headers, Mapping) else (headers or ()))


# --- progress ------------------------------------------------------------------------------------------
PROGRESS_EVERY_S = 5.0


class Progress:
    """Progress lines for long runs, at most one per `every_s` seconds (0: none), on `stream`:
    `refinery-reconcile: derived topics: 120,000 records read, 12/30 topics done, 15.2s elapsed`."""

    def __init__(
        self,
        every_s: float = PROGRESS_EVERY_S,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._every_s = every_s
        self._stream = stream
        self._clock = clock
        self._started = clock()
        self._last = self._started
        self.phase = ""
        self.records = 0
        self.topics_done = 0
        self.topics = 0
        self.lines = 0

    def start_phase(self, phase: str, topics: int) -> None:
        self.phase, self.topics, self.topics_done = phase, topics, 0

    def read(self, records: int) -> None:
        self.records += records
        self._maybe_print()

    def topic_done(self) -> None:
        self.topics_done += 1
        self._maybe_print()

    def _maybe_print(self) -> None:
        now = self._clock()
        if self._every_s <= 0 or now - self._last < self._every_s:
            return
        self._last = now
        self.lines += 1
        print(
            f"refinery-reconcile: {self.phase}: {self.records:,} records read, "
            f"{self.topics_done}/{self.topics} topics done, {now - self._started:.1f}s elapsed",
            file=self._stream or sys.stderr,
            flush=True,
        )


# --- reading topics back ------------------------------------------------------------------------------
def read_topics(
    client_config: Mapping[str, Any],
    topics: Iterable[str],
    *,
    timeout_s: float = 120.0,
    progress: Progress | None = None,
) -> Iterator[Message]:
    """Every committed record of `topics`, from the beginning to the end they had when reading started
    (counted on `progress`, with each topic done once all its partitions are read)."""
    topics = sorted(set(topics))
    if not topics:
        return
    consumer = Consumer(
        {
            **client_config,
            "group.id": f"refinery-reconcile-{uuid.uuid4().hex}",  # never committed
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
        }
    )
    try:
        metadata = consumer.list_topics(timeout=30)
        partitions: list[TopicPartition] = []
        for topic in topics:
            meta = metadata.topics.get(topic)
            if meta is None or meta.error is not None:
                raise ReconcileError(f"topic {topic!r} cannot be read: {getattr(meta, 'error', 'missing')}")
            partitions += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions]
        pending = set()
        for tp in partitions:
            low, high = consumer.get_watermark_offsets(tp, timeout=30)
            if high > low:
                pending.add((tp.topic, tp.partition))
        progress = progress or Progress(0)
        progress.start_phase(progress.phase, len(topics))
        for _ in set(topics) - {topic for topic, _ in pending}:
            progress.topic_done()  # nothing to read in it
        consumer.assign(partitions)
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise ReconcileError(f"reading {len(pending)} partitions did not finish in {timeout_s:.0f}s")
            batch = consumer.consume(1000, 0.5)
            read = 0
            for msg in batch:
                err = msg.error()
                if err is None:
                    read += 1
                    yield msg
                elif err.code() == KafkaError._PARTITION_EOF:
                    topic = msg.topic() or ""
                    pending.discard((topic, msg.partition() or 0))
                    if not any(t == topic for t, _ in pending):
                        progress.topic_done()
                else:
                    raise ReconcileError(f"reading {msg.topic()!r} failed: {err.str()}")
            progress.read(read)
    except KafkaException as exc:
        raise ReconcileError(f"reading topics failed: {exc}") from None
    finally:
        consumer.close()


def list_topics(client_config: Mapping[str, Any], pattern: str) -> list[str]:
    consumer = Consumer({**client_config, "group.id": f"refinery-reconcile-{uuid.uuid4().hex}"})
    try:
        names = consumer.list_topics(timeout=30).topics
    except KafkaException as exc:
        raise ReconcileError(f"cannot list topics: {exc}") from None
    finally:
        consumer.close()
    regex = re.compile(pattern)
    return sorted(t for t in names if regex.search(t))


def reconcile_cluster(
    client_config: Mapping[str, Any],
    reconciler: Reconciler,
    *,
    ingest_topics: Iterable[str],
    dlq_topic: str,
    derived_pattern: str | None = None,
    progress: Progress | None = None,
) -> ReconcileReport:
    """Read the ingest topics (what was sent), then the derived topics and the DLQ, and reconcile."""
    progress = progress or Progress(0)
    progress.start_phase("ingest topics", 0)
    for msg in read_topics(client_config, ingest_topics, progress=progress):
        coordinate = (msg.topic() or "", msg.partition() or 0, msg.offset() or 0)
        reconciler.expect(coordinate, msg.value(), msg.headers(), msg.key())  # type: ignore[arg-type]  # always a list
    existing = set(list_topics(client_config, ""))
    derived = set(reconciler.expected_topics)
    if derived_pattern is not None:
        derived |= {t for t in existing if re.search(derived_pattern, t) and not is_ingest_topic(t)}
    progress.start_phase("derived topics", 0)
    for msg in read_topics(client_config, derived & existing, progress=progress):
        reconciler.observe_derived(msg.topic() or "", msg.headers())
    if dlq_topic in existing:
        progress.start_phase("dead-letter topic", 0)
        for msg in read_topics(client_config, [dlq_topic], progress=progress):
            reconciler.observe_dead_letter(msg.headers())
    return reconciler.finish()


# --- command line -------------------------------------------------------------------------------------
def _router(args: argparse.Namespace, kafka: KafkaSettings, worker: WorkerSettings) -> Router:
    from refinery.control.route_store import RouteWatcher
    from refinery.routing.rules import load_route_file

    if args.routes:
        return compile_router(load_route_file(args.routes))
    with RouteWatcher(kafka.client_config(), worker.routes_topic) as watcher:
        if not watcher.wait_ready(30) or watcher.current() is None:
            raise ReconcileError(f"no route set could be read from {worker.routes_topic!r}; pass --routes")
        router = watcher.current()
        assert router is not None
        return router


def main(argv: list[str] | None = None) -> int:
    from common.logs import configure_logging

    parser = argparse.ArgumentParser(prog="refinery-reconcile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--routes", help="route file (default: the live set on the routes topic)")
    parser.add_argument(
        "--ingest-pattern", help="regex of ingest topics (default REFINERY_WORKER_INGEST_PATTERN)"
    )
    parser.add_argument("--derived-pattern", help="regex of extra topics to scan for misrouted records")
    parser.add_argument("--dlq-topic", help="dead-letter topic (default REFINERY_WORKER_DLQ_TOPIC)")
    parser.add_argument("--registry-check", action="store_true", help="expect unknown schema ids in the DLQ")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--progress-every",
        type=float,
        default=PROGRESS_EVERY_S,
        metavar="SECONDS",
        help=f"a progress line on stderr at most this often (default {PROGRESS_EVERY_S:g}; 0: none)",
    )
    args = parser.parse_args(argv)
    configure_logging()
    kafka, worker = KafkaSettings(), WorkerSettings()
    checker = None
    try:
        if args.registry_check or worker.registry_check:  # with the registry's credentials, like the workers
            checker = SchemaIdChecker.from_settings(
                RegistrySettings(), negative_ttl_s=worker.registry_negative_ttl_s
            )
        reconciler = Reconciler(
            _router(args, kafka, worker), max_record_bytes=worker.max_record_bytes,
            schema_checker=checker, dlq_unmatched=worker.dlq_unmatched,
            allowed_envs=worker.derived_allowed_envs, verify_envelope=worker.verify_envelope,
        )  # fmt: skip
        conf = kafka.client_config()
        ingest = [
            t for t in list_topics(conf, args.ingest_pattern or worker.ingest_pattern) if is_ingest_topic(t)
        ]
        report = reconcile_cluster(
            conf, reconciler, ingest_topics=ingest, dlq_topic=args.dlq_topic or worker.dlq_topic,
            derived_pattern=args.derived_pattern, progress=Progress(args.progress_every),
        )  # fmt: skip
    except (RefineryError, OSError) as exc:
        print(f"refinery-reconcile: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        for name, value in report.to_json().items():
            print(f"{name:>20}: {value}")
    return 0 if report.clean else 1


if __name__ == "__main__":
    sys.exit(main())
