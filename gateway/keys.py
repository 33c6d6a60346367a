"""API keys: who may send what through the gateway. Created, listed and revoked with
`refinery-gateway keys ...`; stored hashed in a compacted Kafka topic that every gateway process tails.

A key reads `rgw_<id>_<secret>`: `id` (12 hex digits) is public and names the key in logs, metrics and
listings; the whole key is shown once, when it is created, and stored only as its SHA-256. A fast hash
is enough here (GitHub stores its tokens the same way): the secret is 256 random bits, not a password
that could be guessed, so a slow hash would only slow every request. The key is never logged.

Why a compacted topic (`REFINERY_GATEWAY_KEYS_TOPIC`, like the registry's `_schemas` and the workers'
`_refinery_routes`) rather than a file: the gateway runs as several processes and, in compose or
production, on several hosts; they all read the same topic from the start and then tail it, so a key
created or revoked by the CLI works or stops working on every process within a second or so, with no
restart, no shared disk, and the broker's replication for durability. Compaction keeps the latest record
per key id; revoking writes the record again with `revoked_at` set (never a tombstone), so a revoked key
stays revoked and listed. Kafka ACLs should let only operators write the topic (the repo ships none).

Scope: a key carries one env and one title (the client cannot choose them), the sources it may send
as (one or more) and, optionally, the only categories it may send; a `rate` (events/s) overrides the
gateway's default rate limit.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from common.config import BROKER_DEFAULT_REPLICATION
from common.errors import InvalidInputError, RefineryError, TopicNameError
from common.kafka_admin import TopicCreationError, ensure_compacted_topic
from common.topics import validate_component

log = logging.getLogger(__name__)

KEY_PREFIX = "rgw_"
_KEY_RE = re.compile(r"^rgw_([0-9a-f]{12})_([A-Za-z0-9_-]{20,100})$")
RECORD_FORMAT = 1


class KeyStoreError(RefineryError):
    """The keys topic could not be created, written or read (the message says why)."""


class KeyScopeError(InvalidInputError):
    """A scope that cannot be used (bad env, title, source or category name)."""


@dataclass(frozen=True)
class KeyScope:
    env: str
    title: str
    sources: tuple[str, ...]
    categories: tuple[str, ...] | None = None  # None: every category

    def __post_init__(self) -> None:
        try:
            validate_component("env", self.env)
            validate_component("title", self.title)
            if not self.sources:
                raise KeyScopeError("a key needs at least one source")
            for source in self.sources:
                validate_component("source", source)
            for category in self.categories or ():
                validate_component("category", category)
        except TopicNameError as exc:
            raise KeyScopeError(str(exc)) from None
        if self.categories is not None and not self.categories:
            raise KeyScopeError("categories: give at least one, or none at all for every category")


@dataclass(frozen=True)
class ApiKey:
    """One key as stored: its public id, the hash of the whole key, its scope and its history."""

    id: str
    hash: str  # "sha256:<hex>"
    scope: KeyScope
    name: str = ""
    rate: float | None = None  # events/s; None: the gateway's default
    created_at: str = ""
    created_by: str = ""
    revoked_at: str | None = None
    revoked_by: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def matches(self, token: str) -> bool:
        return hmac.compare_digest(self.hash, hash_key(token))

    def describe(self) -> dict[str, Any]:
        """What `keys list` shows (no hash)."""
        doc = asdict(self)
        doc.pop("hash")
        doc["scope"]["sources"] = list(self.scope.sources)
        if self.scope.categories is not None:
            doc["scope"]["categories"] = list(self.scope.categories)
        return doc


def hash_key(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def key_id_of(token: str) -> str | None:
    """The public id of a well-formed key, else None."""
    match = _KEY_RE.match(token)
    return match.group(1) if match else None


def new_key(
    scope: KeyScope, *, name: str = "", rate: float | None = None, created_by: str = ""
) -> tuple[str, ApiKey]:
    """A fresh key: (the key itself, shown once; what is stored)."""
    if rate is not None and rate <= 0:
        raise KeyScopeError(f"rate must be > 0 events/s, got {rate}")
    key_id = secrets.token_hex(6)
    token = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    stored = ApiKey(key_id, hash_key(token), scope, name, rate, utc_now(), created_by)
    return token, stored


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# --- records --------------------------------------------------------------------------------------------
def record_key(key_id: str) -> bytes:
    return f"key/{key_id}".encode()


def encode_key(key: ApiKey) -> bytes:
    doc = asdict(key)
    doc["format"] = RECORD_FORMAT
    return json.dumps(doc, sort_keys=True).encode()


def decode_key(value: bytes) -> ApiKey:
    """An ApiKey from a record value; KeyStoreError when it is not one."""
    try:
        doc = json.loads(value)
        scope = doc.pop("scope")
        doc.pop("format", None)
        categories = scope.get("categories")
        return ApiKey(
            scope=KeyScope(
                scope["env"],
                scope["title"],
                tuple(scope["sources"]),
                tuple(categories) if categories is not None else None,
            ),
            **doc,
        )
    except (ValueError, KeyError, TypeError, InvalidInputError) as exc:
        raise KeyStoreError(f"not an API key record: {exc}") from None


# --- the store every gateway process keeps ---------------------------------------------------------------
class KeyRing:
    """The keys known to this process (replaced record by record by the watcher); thread-safe reads."""

    def __init__(self, keys: Iterable[ApiKey] = ()) -> None:
        self._keys: dict[str, ApiKey] = {k.id: k for k in keys}

    def put(self, key: ApiKey) -> None:
        self._keys = {**self._keys, key.id: key}  # copy-on-write: readers never see a half update

    def get(self, key_id: str) -> ApiKey | None:
        return self._keys.get(key_id)

    def authenticate(self, token: str) -> ApiKey | None:
        """The active key `token` is, or None (unknown, malformed, wrong secret or revoked)."""
        key_id = key_id_of(token)
        key = self._keys.get(key_id) if key_id else None
        if key is None or not key.matches(token) or not key.active:
            return None
        return key

    def __len__(self) -> int:
        return len(self._keys)

    def active_count(self) -> int:
        return sum(1 for k in self._keys.values() if k.active)

    def all(self) -> list[ApiKey]:
        return sorted(self._keys.values(), key=lambda k: (k.created_at, k.id))


def ensure_keys_topic(
    client_config: Mapping[str, Any],
    topic: str,
    *,
    replication_factor: int = BROKER_DEFAULT_REPLICATION,
    timeout_s: float = 30.0,
) -> None:
    """Create the compacted one-partition keys topic unless it exists."""
    try:
        ensure_compacted_topic(
            client_config, topic, replication_factor=replication_factor, timeout_s=timeout_s
        )
    except TopicCreationError as exc:
        raise KeyStoreError(f"could not create the keys topic {topic!r}: {exc}") from None


def publish_key(
    client_config: Mapping[str, Any], topic: str, key: ApiKey, *, timeout_s: float = 30.0
) -> None:
    """Write a key record (new, or revoked) and wait for the broker's acknowledgement."""
    producer = Producer({**client_config, "enable.idempotence": True, "acks": "all"})
    failures: list[str] = []

    def on_delivery(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            failures.append(str(err))

    producer.produce(topic, key=record_key(key.id), value=encode_key(key), on_delivery=on_delivery)
    if producer.flush(timeout_s) > 0 or failures:
        reason = failures[0] if failures else f"not confirmed within {timeout_s:.0f}s"
        raise KeyStoreError(f"could not write key {key.id} to {topic!r}: {reason}")
    log.info("api key written", extra={"key_id": key.id, "revoked": not key.active, "topic": topic})


def _consumer(client_config: Mapping[str, Any]) -> Consumer:
    return Consumer(
        {
            **client_config,
            "group.id": f"refinery-gateway-keys-{uuid.uuid4().hex}",  # never committed
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "allow.auto.create.topics": False,
            "fetch.wait.max.ms": 100,
        }
    )


def _apply(ring: KeyRing, msg: Message) -> None:
    value = msg.value()
    if not value:
        return
    try:
        ring.put(decode_key(value))
    except KeyStoreError as exc:
        log.warning("skipped an invalid key record", extra={"offset": msg.offset(), "error": str(exc)})


def read_keys(client_config: Mapping[str, Any], topic: str, *, timeout_s: float = 15.0) -> KeyRing:
    """Read the keys topic once, start to end (for the CLI). A missing topic is an empty ring."""
    ring = KeyRing()
    admin = AdminClient(dict(client_config))
    try:
        found = admin.list_topics(timeout=timeout_s).topics.get(topic)
    except KafkaException as exc:
        raise KeyStoreError(f"could not list topics to find {topic!r}: {exc.args[0]}") from None
    if found is None or found.error is not None or not found.partitions:
        return ring
    consumer = _consumer(client_config)
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=timeout_s)
        if high <= low:
            return ring
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for msg in consumer.consume(500, 0.5):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        return ring
                    raise KeyStoreError(f"reading {topic!r} failed: {err.str()}")
                _apply(ring, msg)
                if (msg.offset() or 0) >= high - 1:
                    return ring
        raise KeyStoreError(f"reading {topic!r} did not finish within {timeout_s:.0f}s")
    except KafkaException as exc:
        raise KeyStoreError(f"reading {topic!r} failed: {exc.args[0]}") from None
    finally:
        consumer.close()


@dataclass
class KeyWatcher:
    """Reads the keys topic from the start into `ring`, then tails it on a thread until closed."""

    client_config: Mapping[str, Any]
    topic: str
    ring: KeyRing = field(default_factory=KeyRing)
    _caught_up: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _target: int = 0  # the topic's end offset when reading started

    def start(self) -> KeyWatcher:
        consumer = _consumer(self.client_config)
        try:
            _, self._target = consumer.get_watermark_offsets(TopicPartition(self.topic, 0), timeout=15)
        except KafkaException as exc:
            consumer.close()
            raise KeyStoreError(f"cannot read the keys topic {self.topic!r}: {exc.args[0]}") from None
        consumer.assign([TopicPartition(self.topic, 0, OFFSET_BEGINNING)])
        if self._target <= 0:
            self._caught_up.set()
        self._thread = threading.Thread(target=self._run, args=(consumer,), name="gateway-keys", daemon=True)
        self._thread.start()
        return self

    def wait_ready(self, timeout_s: float) -> bool:
        return self._caught_up.wait(timeout_s)

    @property
    def ready(self) -> bool:
        return self._caught_up.is_set()

    def _run(self, consumer: Consumer) -> None:
        try:
            while not self._stop.is_set():
                for msg in consumer.consume(500, 0.2):
                    err = msg.error()
                    if err is None:
                        _apply(self.ring, msg)
                        if (msg.offset() or 0) >= self._target - 1:
                            self._caught_up.set()
                    elif err.code() == KafkaError._PARTITION_EOF:
                        self._caught_up.set()
                    else:
                        log.warning("keys topic read error", extra={"error": err.str()})
        except Exception:  # a dead watcher must be seen: keys would silently stop changing
            log.exception("the keys watcher stopped")
            raise
        finally:
            consumer.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def revoked(key: ApiKey, by: str) -> ApiKey:
    return replace(key, revoked_at=utc_now(), revoked_by=by)
