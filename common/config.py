"""All configuration, in one place.

Every setting comes from an environment variable (prefix shown on each class) with a default that works
on 127.0.0.1; command-line flags override them by passing values to the constructors. Nothing else in the
project reads `os.environ` for configuration.

    REFINERY_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092   where every client connects
    REFINERY_REGISTRY_URL=http://127.0.0.1:8081      where clients find the schema registry
"""

from __future__ import annotations

import difflib
import fnmatch
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.errors import ConfigError
from common.limits import MAX_RECORD_BYTES
from common.topics import INGEST_TOPIC_REGEX

REPO_ROOT = Path(__file__).resolve().parent.parent


BROKER_DEFAULT_REPLICATION = -1


def _replication(value: int) -> int:
    if value == BROKER_DEFAULT_REPLICATION or value >= 1:
        return value
    raise ValueError("must be -1 (the broker's default.replication.factor) or at least 1")


# Replication of a topic we create: -1 (the default) asks the broker for its `default.replication.factor`
# (KIP-464), so one dev broker gets 1 and a production cluster gets what its operators set (3), and
# min.insync.replicas always comes from the cluster. A number pins it.
Replication = Annotated[int, AfterValidator(_replication)]


def _partition_overrides(value: dict[str, int]) -> dict[str, int]:
    for pattern, count in value.items():
        if not pattern:
            raise ValueError("a topic pattern must not be empty")
        if count < 1:
            raise ValueError(f"{pattern!r}: partitions must be at least 1, not {count}")
    return value


# Topic-name glob (`fnmatch`: `*`, `?`, `[seq]`) -> partitions, in order; the first pattern that matches wins.
PartitionOverrides = Annotated[dict[str, int], AfterValidator(_partition_overrides)]


def _prefixed(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=prefix, extra="forbid", frozen=True)


class RefinerySettings(BaseSettings):
    """Base of every settings class here: a misspelt setting is an error, never a silent default.
    Unknown keyword arguments are refused (`extra="forbid"`, a pydantic ValidationError), and so are
    environment variables under the class's prefix that no settings class reads (a ConfigError naming the
    variable and the closest known one). A variable is judged only by the class with the longest prefix
    it starts with: `REFINERY_LOCAL_KAFKA_HEAP` belongs to LocalKafkaSettings, not KafkaSettings, and
    variables under no settings prefix (`REFINERY_SOAK`) are none of our business."""

    def __init__(self, **values: Any) -> None:
        problems = unknown_environment(type(self), os.environ)
        if problems:
            plural = "s" if len(problems) > 1 else ""
            raise ConfigError(
                f"{type(self).__name__}: unknown environment variable{plural} under "
                f"{_env_prefix(type(self))}*: {'; '.join(problems)}"
            )
        super().__init__(**values)


def _env_prefix(cls: type[BaseSettings]) -> str:
    return (cls.model_config.get("env_prefix") or "").upper()


def env_names(cls: type[BaseSettings]) -> set[str]:
    """The environment variables a settings class reads (upper case: they are matched ignoring case)."""
    names = set()
    for name, info in cls.model_fields.items():
        alias = info.validation_alias or info.alias
        if isinstance(alias, str):
            names.add(alias)
        elif isinstance(alias, AliasChoices):
            names |= {choice for choice in alias.choices if isinstance(choice, str)}
        else:
            names.add(_env_prefix(cls) + name)
    return {name.upper() for name in names}


def settings_classes() -> list[type[RefinerySettings]]:
    """Every settings class defined so far (all of this module's, and any subclass made elsewhere)."""
    found: list[type[RefinerySettings]] = []
    pending = [RefinerySettings]
    while pending:
        for sub in pending.pop().__subclasses__():
            found.append(sub)
            pending.append(sub)
    return found


def unknown_environment(cls: type[RefinerySettings], environ: Mapping[str, str]) -> list[str]:
    """One line per variable in `environ` under `cls`'s prefix that no settings class reads, with the
    closest name `cls` does read. Variables under a longer prefix of another class are that class's."""
    prefix = _env_prefix(cls)
    if not prefix:
        return []
    classes = settings_classes()
    known = set().union(*(env_names(c) for c in classes))
    longer = {p for p in map(_env_prefix, classes) if len(p) > len(prefix) and p.startswith(prefix)}
    own = sorted(name.removeprefix(prefix) for name in env_names(cls))
    problems = []
    for var in sorted(environ):
        name = var.upper()
        if not name.startswith(prefix) or name in known or any(name.startswith(p) for p in longer):
            continue
        close = difflib.get_close_matches(name.removeprefix(prefix), own, n=1)
        problems.append(f"{var} (did you mean {prefix}{close[0]}?)" if close else f"{var} (no such setting)")
    return problems


class KafkaSettings(RefinerySettings):
    """Connection to the Kafka cluster, shared by every client we create. Prefix `REFINERY_KAFKA_`."""

    model_config = _prefixed("REFINERY_KAFKA_")

    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: str | None = None

    def client_config(self) -> dict[str, Any]:
        """librdkafka properties for confluent-kafka clients (secrets included: never log the result)."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username is not None:
            conf["sasl.username"] = self.sasl_username
        if self.sasl_password is not None:
            conf["sasl.password"] = self.sasl_password.get_secret_value()
        if self.ssl_ca_location:
            conf["ssl.ca.location"] = self.ssl_ca_location
        return conf

    @property
    def first_host_port(self) -> tuple[str, int]:
        host, _, port = self.bootstrap_servers.split(",")[0].strip().rpartition(":")
        return host or "127.0.0.1", int(port or 9092)


class LocalKafkaSettings(RefinerySettings):
    """The single-node KRaft broker we run from Maven jars for development, tests and CI.
    Prefix `REFINERY_LOCAL_KAFKA_`. It listens on the port of `REFINERY_KAFKA_BOOTSTRAP_SERVERS`."""

    model_config = _prefixed("REFINERY_LOCAL_KAFKA_")

    home: Path = REPO_ROOT / ".run" / "kafka"
    libs_dir: Path = REPO_ROOT / ".cache" / "kafka" / "libs"
    pom: Path = REPO_ROOT / "dev" / "kafka" / "pom.xml"
    controller_port: int | None = None  # default: broker port + 1
    heap: str = "1g"
    start_timeout_s: float = 90.0


class LogSettings(RefinerySettings):
    """Structured logging. Prefix `REFINERY_LOG_`."""

    model_config = _prefixed("REFINERY_LOG_")

    level: str = "INFO"
    format: str = Field(default="json", pattern="^(json|text)$")


class RegistrySettings(RefinerySettings):
    """The schema registry service and its clients. Prefix `REFINERY_REGISTRY_`."""

    model_config = _prefixed("REFINERY_REGISTRY_")

    url: str = "http://127.0.0.1:8081"
    host: str = "127.0.0.1"
    port: int = 8081
    topic: str = "_schemas"
    username: str | None = None
    password: SecretStr | None = None
    # --- the service (`refinery-registry`, owned by `schema_registry/`) ---
    # leader election + id high-water mark; default "{topic}_coordination"
    coordination_topic: str | None = None
    advertised_url: str | None = None  # how other replicas reach this one; default http://{host}:{port}
    leader_eligible: bool = True  # false: never write, forward every write to the leader
    leader_session_timeout_ms: int = Field(default=6000, ge=1000)  # how fast a dead leader is replaced
    default_compatibility: str = "BACKWARD"
    store_timeout_s: float = Field(default=30.0, gt=0)
    # Optional auth (enabled when either list is non-empty; the model is `common.auth`). JSON lists in the
    # environment, e.g. REFINERY_REGISTRY_AUTH_USERS='["alice:secret:admin","ci:pw:write"]',
    # ..._AUTH_TOKENS='["tok:read"]'. Roles: read < write (register, delete) < admin (config, mode).
    auth_users: list[SecretStr] = Field(default_factory=list)  # "name:password:role"
    auth_tokens: list[SecretStr] = Field(default_factory=list)  # "token:role" (HTTP bearer)

    @property
    def coordination_topic_name(self) -> str:
        return self.coordination_topic or f"{self.topic}_coordination"

    @property
    def own_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return (self.advertised_url or f"http://{host}:{self.port}").rstrip("/")


# Kafka's record-batch codecs: the `compression.type` values every producer setting accepts.
KAFKA_CODECS = "^(none|gzip|snappy|lz4|zstd)$"


class ProducerSettings(RefinerySettings):
    """Producer SDK defaults (owned by `producers/`). Prefix `REFINERY_PRODUCER_`."""

    model_config = _prefixed("REFINERY_PRODUCER_")

    env: str = "dev"
    source: str = "telemetry"
    producer_id: str | None = None  # identity written to every envelope; default "{host}/{pid}"
    # Ingest topics created on demand (`common.kafka_admin.TopicEnsurer`).
    partitions: int = Field(default=12, ge=1)
    replication_factor: Replication = BROKER_DEFAULT_REPLICATION
    allowed_envs: list[str] | None = None  # JSON list in the environment, e.g. '["prod","dev"]'
    allowed_sources: list[str] | None = None
    # Delivery: the SDK always sets enable.idempotence=true and acks=all (overrides may not weaken them).
    linger_ms: int = Field(default=20, ge=0)
    compression: str = Field(default="lz4", pattern=KAFKA_CODECS)
    queue_max_messages: int = Field(default=100_000, ge=1)
    queue_max_kbytes: int = Field(default=262_144, ge=1)
    delivery_timeout_ms: int = Field(default=120_000, ge=1)
    block_timeout_s: float = Field(default=10.0, ge=0)  # how long send() waits on a full queue
    # Extra librdkafka properties, snake_case or dotted: `ssl_key_location` == `ssl.key.location`.
    kafka_overrides: dict[str, str | int | float | bool] = Field(default_factory=dict)
    # Payload fields used as the record key when send() gets none (first one present wins).
    key_fields: list[str] = Field(default_factory=lambda: ["match_id", "player_id"])
    registry_timeout_s: float = Field(default=5.0, gt=0)
    auto_register: bool = False  # local development only: register a missing schema on first send
    # Where `refinery-demo` serves the SDK's Prometheus metrics (/metrics); None: not served. An
    # application using the SDK exports them from prometheus-client's default registry itself.
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"


AT_LEAST_ONCE_BATCH_SIZE = 2_000
EXACTLY_ONCE_BATCH_SIZE = 10_000
INFLIGHT_FULL_BATCHES = 4  # at-least-once: the default bound of the records in flight, in full batches


class WorkerSettings(RefinerySettings):
    """Refinery worker (owned by `refinery/`). Prefix `REFINERY_WORKER_`."""

    model_config = _prefixed("REFINERY_WORKER_")

    group_id: str = "refinery-router"
    web_port: int = 6066
    web_host: str = "127.0.0.1"
    data_dir: Path = REPO_ROOT / ".run" / "refinery"  # Faust's datadir (the app keeps no tables in it)
    instance_id: str | None = None  # default: a fresh id per process (names the transactional.id)
    ingest_pattern: str = INGEST_TOPIC_REGEX
    routes_topic: str = "_refinery_routes"
    dlq_topic: str = "_refinery_dlq"
    dlq_unmatched: bool = False  # unmatched records are counted; also copy them to the DLQ when true
    # The largest record (key + value + headers + framing, `common.limits.record_size`) the guard passes;
    # also the data plane producer's `message.max.bytes`, so whatever the guard passes can be forwarded.
    max_record_bytes: int = Field(default=MAX_RECORD_BYTES, ge=1024)
    verify_envelope: bool = True  # DLQ values that are not an Envelope or that the headers contradict
    dedup_window_s: float = Field(default=600.0, gt=0)
    dedup_max_ids_per_partition: int = Field(default=500_000, ge=1)
    dedup_topic: str | None = None  # default: _{group_id}-dedup
    # Settling a batch a crash left unfinished (refinery.dedup.settle) reads its derived topics from its
    # intent's time to this much later. Its outputs are produced right after the intent is acknowledged
    # and stamped at produce() (retries keep the stamp), so they fall within milliseconds unless the
    # producer's local queue was full; 30 s covers a long stall, and an output stamped later can only be
    # written again by the replay (a duplicate), never lost. The read stops early once every id of the
    # intent was found, so a larger value costs only when some outputs did not land.
    dedup_settle_window_s: float = Field(default=30.0, gt=0)
    exactly_once: bool = False
    progress_topic: str | None = None  # default: _{group_id}-progress (exactly-once resume points)
    # How long a newly assigned partition waits for transactions still open on the progress topic
    # (refinery.worker.progress): the longest a transaction stays open plus a stalled leader's request
    # timeout. Past it the worker resumes at the committed offsets and says so.
    progress_read_timeout_s: float = Field(default=60.0, gt=0)
    transaction_timeout_ms: int = Field(default=30_000, ge=1000)  # bounds how long a dead worker blocks
    # Partitions of a derived topic the worker creates (a topic that exists is used as it is). Each derived
    # topic is one slice of an ingest topic, so one partition by default, as the broker's `num.partitions`:
    # librdkafka sends one partition per produce request (confluentinc/librdkafka#1700), and 12 partitions
    # each over the reference set's 24 derived topics made a 10k msg/s feed 288 nearly empty requests at a
    # time (p99 0.9 s against 0.13 s with 1; bench/results/NOTES.md §3, tenth round). A slice that needs
    # more consumers in a group gets more through `derived_partitions_by_topic`, or by creating its topic
    # ahead.
    derived_partitions: int = Field(default=1, ge=1)
    derived_partitions_by_topic: PartitionOverrides = {}  # JSON object {"prod.telemetry.1234.*": 6, ...}
    derived_replication: Replication = BROKER_DEFAULT_REPLICATION
    derived_allowed_envs: list[str] | None = None  # JSON list; other envs get no derived topics (DLQ instead)
    internal_replication: Replication = BROKER_DEFAULT_REPLICATION  # DLQ, dedup and Faust's own topics
    registry_check: bool = False  # DLQ records whose schema id the registry does not know
    registry_negative_ttl_s: float = 30.0  # how long an unknown schema id stays unknown before re-asking
    # Records per consume() and batch; unset: 2,000 at least once (up to 4 full batches in flight) and
    # 10,000 exactly once (a transaction per batch, whose commit the loop waits for: larger batches spread
    # that wait; 0.61x -> 0.83x of the hand-written router's rate, bench/results/NOTES.md §2). A live feed
    # forwards partial batches after batch_idle_timeout_s either way.
    batch_size: int | None = Field(default=None, ge=1)
    # consume() wait after a batch that came full at once (a deep queue); one that filled only while
    # consume() waited is the live edge, and the next wait is batch_idle_timeout_s
    batch_timeout_s: float = Field(default=0.2, gt=0)
    batch_idle_timeout_s: float = Field(default=0.005, gt=0)  # ... after a partial one (live feed: latency)
    # At-least-once: batches produced and awaiting their acknowledgements and commit, at most this many and
    # holding at most max_inflight_records input records between them (unset: 4 full batches); one batch
    # always goes. The count used to be 4: on a live feed batches are small (batch_idle_timeout_s) and
    # complete only once the producer has nothing outstanding, so the loop stopped to wait for the producer
    # every 4 small batches; at 10k msg/s a worker starting caught up fell seconds behind that way
    # (bench/results/NOTES.md §3, ninth round). Full batches are still bounded as before, by the records.
    max_inflight_batches: int = Field(default=64, ge=1)
    max_inflight_records: int | None = Field(default=None, ge=1)
    commit_interval_s: float = Field(default=0.1, ge=0)  # at-least-once: async commits at most this often
    # At-least-once: the producer reports failed records only, and batches complete as count_acks counts
    # their acknowledged records (below), or else when it has nothing outstanding (a held loop flushes, so
    # that drain takes no linger). On, a delivery report per acknowledged record completes each batch on
    # its own, at ~2 us of CPU per input record (confluent-kafka builds a Message per report). Measured
    # (bench/results/NOTES.md §2, fifth round): off 1.07x the hand-written router's CPU per input against
    # 1.17x on, the same rate; latency at 2k and 10k msg/s within the runs' noise either way.
    success_reports: bool = False
    # The compiled loops read a consumed record's header values, and copy its headers into the outputs,
    # from librdkafka's own list instead of confluent-kafka's Python objects (refinery/worker/direct.py; it
    # checks the objects' layout first and logs why when it cannot). Process-wide; false: always the API.
    direct_headers: bool = True
    # At-least-once with failure-only reports: the producer carries a librdkafka interceptor that counts
    # each batch's acknowledged records in C (refinery/worker/write_fast.c), so batches complete as their
    # records are acknowledged, without a report per record, instead of only when the producer has nothing
    # outstanding (on a live feed the loop stopped twice a second for 25-65 ms to drain it at 10k msg/s:
    # bench/results/NOTES.md §3, twelfth round). Needs direct_headers' binding; false: drains as before.
    count_acks: bool = True
    # Failure policy (refinery.worker.outcomes): librdkafka retries transient errors itself for
    # message_timeout_ms; records still failing are sent again (only those) after a jittered backoff
    # from retry_initial_backoff_s doubling to retry_max_backoff_s, at most retry_max_attempts times;
    # then (or at once when the DLQ refuses a dead letter) the worker pauses consumption, reports not
    # ready, and probes every pause_probe_interval_s until the writes go through.
    message_timeout_ms: int = Field(default=60_000, ge=1000)
    retry_initial_backoff_s: float = Field(default=0.2, gt=0)
    retry_max_backoff_s: float = Field(default=10.0, gt=0)
    retry_max_attempts: int = Field(default=5, ge=1)
    pause_probe_interval_s: float = Field(default=5.0, gt=0)
    drain_timeout_s: float = Field(default=30.0, gt=0)  # rebalance/stop: finish what is in flight, at most
    stall_after_s: float = Field(default=30.0, gt=0)  # /ready fails after this long without progress
    # A Kafka call still running this long past its own timeout is wedged (refinery.worker.watchdog):
    # /health and /ready fail; the process exits (code 70) watchdog_exit_after_s later (0: never exits).
    watchdog_grace_s: float = Field(default=10.0, gt=0)
    watchdog_exit_after_s: float = Field(default=30.0, ge=0)
    linger_ms: int = Field(default=5, ge=0)
    batch_bytes: int = Field(default=1_000_000, ge=1)
    batch_num_messages: int = Field(default=10_000, ge=1)
    # Consumer prefetch: librdkafka's defaults. A fetcher that never backs off (backoff 0, 50 ms
    # fetch wait, 4 MiB per partition) spent ~30 us of CPU per 1 KB record in its broker thread against
    # ~7 us with these (bench/results/worker_tuning.json), CPU the data plane and the broker need.
    # queued_max_kbytes bounds the prefetch memory.
    fetch_min_bytes: int = Field(default=1, ge=1)
    fetch_wait_max_ms: int = Field(default=500, ge=0)
    fetch_queue_backoff_ms: int = Field(default=1000, ge=0)
    queued_min_messages: int = Field(default=100_000, ge=1)
    queued_max_kbytes: int = Field(default=65_536, ge=1)
    max_partition_fetch_bytes: int = Field(default=1_048_576, ge=1)
    # Outputs are lz4-compressed like the SDK's ingest records. Uncompressed, the broker stored and served
    # ~4x the bytes: at 10k msg/s on a 2-core box its CPU, and the end-to-end p99 with it, rose (p99
    # 58-75 ms against 46-49 ms with lz4); the worker's own CPU per input was no higher with lz4
    # (bench/results/NOTES.md §3, seventeenth round).
    compression: str = Field(default="lz4", pattern=KAFKA_CODECS)
    queue_max_messages: int = Field(default=500_000, ge=1)
    # Cyclic GC of the data plane (refinery.worker.dataplane.tune_gc): freeze the start-up heap (Faust,
    # imports) so full collections skip it, and collect the young generation less often (records in flight are
    # thousands of GC-tracked Message objects and header tuples, nearly all freed by reference count). A
    # young collection costs what is still alive (the batches in flight), not what was allocated, so a
    # high threshold makes the same collections rarer (~1/s at 40k records/s); bench/results/NOTES.md §2.
    gc_freeze: bool = True
    gc_gen0_threshold: int = Field(default=1_000_000, ge=100)
    # Hand freed C-heap memory back to the OS at most this often (glibc malloc_trim; 0: never): after a
    # backlog burst RSS otherwise stays at its high-water mark (refinery.worker.heap).
    heap_trim_interval_s: float = Field(default=30.0, ge=0)
    metadata_refresh_ms: int = Field(default=2000, ge=100)
    session_timeout_ms: int = Field(default=10_000, ge=1000)  # how soon a dead worker's partitions move
    stats_interval_s: float = Field(default=5.0, gt=0)
    # Optional auth on the route views (`common.auth`, the registry's model; on when either list is
    # non-empty). JSON lists, e.g. REFINERY_WORKER_AUTH_USERS='["ops:secret:write"]'. GET /routes and
    # /routes/history need read, POST /routes needs write, POST /routes?force=true needs admin.
    auth_users: list[SecretStr] = Field(default_factory=list)  # "name:password:role"
    auth_tokens: list[SecretStr] = Field(default_factory=list)  # "token:role" (HTTP bearer)
    # Who `refinery routes apply` acts as when auth is on (flags --user/--password override).
    cli_user: str | None = None
    cli_password: SecretStr | None = None
    # Test hook (reliability tests only): SIGKILL the worker right after the first flush of a batch with
    # dedup-route outputs, before its ids and offsets are recorded (the at-least-once crash window).
    test_crash_after_flush: bool = False

    @property
    def dedup_changelog(self) -> str:
        return self.dedup_topic or f"_{self.group_id}-dedup"

    @property
    def progress_log(self) -> str:
        return self.progress_topic or f"_{self.group_id}-progress"

    @property
    def records_per_batch(self) -> int:
        """`batch_size`, or the default of the delivery guarantee."""
        if self.batch_size is not None:
            return self.batch_size
        return EXACTLY_ONCE_BATCH_SIZE if self.exactly_once else AT_LEAST_ONCE_BATCH_SIZE

    @property
    def inflight_records_limit(self) -> int:
        """`max_inflight_records`, or 4 full batches."""
        if self.max_inflight_records is not None:
            return self.max_inflight_records
        return INFLIGHT_FULL_BATCHES * self.records_per_batch

    def partitions_of_derived(self, topic: str) -> int:
        """How many partitions the worker gives `topic` when it creates it: the first pattern of
        `derived_partitions_by_topic` that matches the name, else `derived_partitions`."""
        for pattern, count in self.derived_partitions_by_topic.items():
            if fnmatch.fnmatchcase(topic, pattern):
                return count
        return self.derived_partitions


class CatalogSettings(RefinerySettings):
    """The catalog service, "what flows where" (owned by `refinery/catalog/`). Prefix `REFINERY_CATALOG_`.
    It reads `/stats` from every worker in `worker_urls` (comma-separated) and the registry's REST API."""

    model_config = _prefixed("REFINERY_CATALOG_")

    host: str = "127.0.0.1"
    port: int = 8090
    worker_urls: str = "http://127.0.0.1:6066"
    timeout_s: float = Field(default=3.0, gt=0)
    group_id: str = "refinery-catalog"  # reads ingest headers in its own consumer group
    start_from: str = Field(default="latest", pattern="^(latest|earliest)$")

    @property
    def worker_url_list(self) -> list[str]:
        return [u.strip().rstrip("/") for u in self.worker_urls.split(",") if u.strip()]


class GatewaySettings(RefinerySettings):
    """The HTTP ingest gateway, `refinery-gateway` (owned by `gateway/`). Prefix `REFINERY_GATEWAY_`.
    Records are built and sent with the producer SDK, so `REFINERY_PRODUCER_*` (partitions, linger,
    compression, queue sizes, key fields) apply to it too; these settings are the HTTP side's."""

    model_config = _prefixed("REFINERY_GATEWAY_")

    host: str = "127.0.0.1"
    port: int = Field(default=8092, ge=1, le=65535)
    workers: int = Field(default=1, ge=1)  # server processes (uvicorn workers) sharing the port
    # API keys: a compacted one-partition topic every gateway process reads from the start and tails.
    keys_topic: str = "_refinery_gateway_keys"
    keys_replication: Replication = BROKER_DEFAULT_REPLICATION
    # Limits, each answered with 413 naming it: the body as received, the body decompressed (a gzip
    # or zstd bomb stops there), and events per request.
    max_body_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    max_decompressed_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    max_events: int = Field(default=1000, ge=1)
    body_timeout_s: float = Field(default=10.0, gt=0)  # the whole body must arrive within this (408)
    # Per-key token bucket, in events: a key's own rate when it has one, else this; split evenly
    # between the `workers` processes. The bucket holds `burst_s` seconds of rate, at least one full batch.
    rate_limit_events_per_s: float = Field(default=5000.0, gt=0)
    burst_s: float = Field(default=2.0, gt=0)
    # Back-pressure: a request is answered 503 at once when its events would take the producer's
    # queue (records sent, not yet acknowledged) above this, or while Kafka is unreachable.
    max_inflight_events: int = Field(default=50_000, ge=1)
    # How long the producer tries to deliver a record (its message.timeout.ms); the response waits this
    # long at most for Kafka's acknowledgements, then reports the rest as failed (503).
    delivery_timeout_ms: int = Field(default=15_000, ge=1000)
    # The producer's linger: every request waits for its batch's acknowledgements, so less than the
    # SDK's default 20 ms (REFINERY_PRODUCER_LINGER_MS is not used by the gateway).
    linger_ms: int = Field(default=5, ge=0)
    retry_after_s: int = Field(default=1, ge=1)  # Retry-After of a 503
    schema_negative_ttl_s: float = Field(default=5.0, ge=0)  # how long "not registered" is remembered
    kafka_check_interval_s: float = Field(default=2.0, gt=0)  # how often /ready asks Kafka (while down)


class StackSettings(RefinerySettings):
    """`refinery-stack`: the whole pipeline as local background processes (owned by `devstack/stack.py`).
    Prefix `REFINERY_STACK_`. Each process gets a pid file and a log in `run_dir`; worker i (from 0) serves
    its web views on `REFINERY_WORKER_WEB_PORT` + i."""

    model_config = _prefixed("REFINERY_STACK_")

    run_dir: Path = REPO_ROOT / ".run" / "stack"
    workers: int = Field(default=2, ge=1)
    routes_file: Path = REPO_ROOT / "refinery" / "routes" / "workload.yaml"
    demo_rate: float = Field(default=20.0, gt=0)  # records per second from the demo producer
    demo_metrics_port: int = Field(default=8091, ge=1, le=65535)  # the demo producer's /metrics
    start_timeout_s: float = Field(default=60.0, gt=0)


class BenchSettings(RefinerySettings):
    """Fixtures of the benchmark harness (owned by `bench/`). Prefix `REFINERY_BENCH_`. The harness sets
    these for the subprocesses it starts (e.g. the Faust pass-through); nobody needs to set them by hand."""

    model_config = _prefixed("REFINERY_BENCH_")

    faust_app_id: str = "bench-faust-passthrough"
    faust_sources: list[str] = Field(default_factory=list)  # JSON list in the environment
    faust_sink: str = "bench-faust-sink"
    faust_data_dir: Path | None = None  # Faust's datadir (default: "{app id}-data" in the working dir)
