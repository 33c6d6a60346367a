"""The compiled loops on librdkafka's own header lists (`refinery/include/kafka_direct.h`,
`refinery/worker/direct.py`), on records that went through the real broker: routing decides exactly what
the Python reference decides, outputs carry byte-identical keys, values and headers, delivery failures
reach the batch's counter, and whatever does not fit takes confluent-kafka's API."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from common import headers as h
from common.kafka_admin import TopicEnsurer
from refinery.dedup.store import DedupStore
from refinery.routing import _route_fast
from refinery.routing import batch as batch_module
from refinery.routing.batch import Output, route_batch
from refinery.routing.guards import COMBINATION_HEADERS, RecordGuard
from refinery.routing.plan import RoutePlans
from refinery.routing.router import compile_router
from refinery.worker import _write_fast, direct
from tests.refinery.routing.test_route_fast import ROUTES, VARIANTS, _replace, _shape, _valid
from tests.refinery.worker.worker_harness import send


@pytest.fixture
def producer(kafka_bootstrap: str) -> Iterator[Producer]:
    # one record per produce request: the broker's size check then judges each record on its own
    p = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 5, "batch.num.messages": 1})
    yield p
    p.flush(10)


@pytest.fixture
def bound(producer: Producer) -> Iterator[Producer]:
    assert direct.bind(producer) is None
    yield producer
    direct.unbind()


def _extra_variants() -> list[tuple[str, bytes | None, Any]]:
    """Records only librdkafka's list can show the compiled reader (names confluent-kafka decodes, more
    headers than the reader takes, the message id last)."""
    value, base = _valid("prod", "1234", "match_started")
    moved = [(n, v) for n, v in base if n != h.MESSAGE_ID] + [(h.MESSAGE_ID, dict(base)[h.MESSAGE_ID])]
    return [
        ("prod", value, [*base, ("straße", b"x")]),
        ("prod", value, [*base, *((f"extra-{i}", b"v") for i in range(60))]),
        # the reader's bound of 64 headers: one under it (read there), at it (the object path)
        ("prod", value, [*base, *((f"extra-{i}", b"v") for i in range(63 - len(base)))]),
        ("prod", value, [*base, *((f"extra-{i}", b"v") for i in range(64 - len(base)))]),
        ("prod", value, moved),
        ("prod", value, _replace(base, h.TITLE, b"")),
        ("prod", value, [*base, ("empty", b"")]),
    ]


def _sendable(variants: list[tuple[str, bytes | None, Any]]) -> list[tuple[str, bytes | None, Any]]:
    """What a Kafka client can send: header values bytes or None (no Python objects)."""
    return [
        (env, value, hs)
        for env, value, hs in variants
        if hs is None or all(v is None or isinstance(v, bytes) for _, v in hs)
    ]


def _consume(bootstrap: str, topics: list[str], count: int) -> list[Any]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"direct-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe(topics)
    records: list[Any] = []
    try:
        for _ in range(120):
            records += [m for m in consumer.consume(500, 0.5) if m.error() is None]
            if len(records) >= count:
                break
    finally:
        consumer.close()
    assert len(records) == count
    return sorted(records, key=lambda m: (m.topic(), m.partition(), m.offset()))


def _route(records: list[Any], plans: RoutePlans | None) -> Any:
    router, guard = (plans.router, plans.guard) if plans else (compile_router(ROUTES), RecordGuard())
    dedup = DedupStore(window_s=60, max_ids_per_partition=100)
    return route_batch(records, router, guard, dedup, plans=plans)


def _list_path(headers: list[tuple[str, Any]]) -> bool:
    return (
        len(headers) >= 64
        or any(value is None for _, value in headers)
        or not all(name.isascii() for name, _ in headers)
    )


def _new_plans() -> RoutePlans:
    return RoutePlans(compile_router(ROUTES), RecordGuard(), dlq_unmatched=False)


def _by_position(batch: Any) -> dict[str, Any]:
    """A batch's shape with each record named by its position in the ingest topics (not its identity)."""
    where = {id(r): (r.topic(), r.partition(), r.offset()) for r in batch.records}
    shape = _shape(batch)
    shape["records"] = [where[i] for i in shape["records"]]
    shape["outputs"] = [(t, where[i], route) for t, i, route in shape["outputs"]]
    shape["dead"] = [(where[i], *rest) for i, *rest in shape["dead"]]
    return shape


def test_it_binds_to_the_librdkafka_confluent_kafka_loaded(producer: Producer) -> None:
    path = direct.loaded_librdkafka()
    assert path is not None and "librdkafka" in path
    try:
        assert direct.bind(producer) is None
        assert _route_fast.bound() and _write_fast.bound() and direct.is_bound()
        assert direct.enable(producer, True) is True  # what the data plane calls, by default
    finally:
        direct.unbind()
    assert not _route_fast.bound() and not _write_fast.bound() and not direct.is_bound()


def test_it_refuses_what_does_not_fit(producer: Producer, tmp_path: Any) -> None:
    probe = Message(topic="t", value=b"v", key=b"k", headers=[("h", b"1")])
    fields = (probe.topic(), probe.value(), probe.key(), probe.headers())
    library = direct.loaded_librdkafka()
    wrong_fields = (probe.topic(), probe.key(), probe.value(), probe.headers())
    assert "fields" in _route_fast.bind(library, Message, probe, wrong_fields, Producer, producer)
    assert "not a confluent-kafka Producer" in _route_fast.bind(
        library, Message, probe, fields, Producer, object()
    )
    assert "not a Message" in _route_fast.bind(library, Message, object(), fields, Producer, producer)
    assert "not loaded" in _route_fast.bind(
        str(tmp_path / "librdkafka.so.1"), Message, probe, fields, Producer, producer
    )
    with pytest.raises(UnicodeEncodeError):  # a path that is no file name: an error, never dlopen(NULL)
        _route_fast.bind("\udcff", Message, probe, fields, Producer, producer)
    assert not direct.is_bound()
    # the acknowledgement interceptor takes its functions the same way
    assert "not loaded" in _write_fast.acks_prepare(str(tmp_path / "librdkafka.so.1"))
    with pytest.raises(TypeError):
        _write_fast.acks_prepare(None)
    with open("/proc/self/maps", encoding="utf-8") as maps_file:  # a library that is loaded but is not it
        libc = next(line.split()[5] for line in maps_file if "/libc.so" in line)
    assert "lacks rd_kafka_conf_interceptor_add_on_new" in _write_fast.acks_prepare(libc)
    why = _route_fast.bind(libc, Message, probe, fields, Producer, producer)
    assert "lacks rd_kafka_header_get_all" in why
    assert _write_fast.acks_prepare(library) is None
    maps = tmp_path / "maps"
    maps.write_text(
        "7f00-7f01 r-xp 00000000 08:01 1 /opt/a/librdkafka.so.1\n"
        "7f02-7f03 r-xp 00000000 08:01 2 /opt/b/librdkafka.so.1\n"
    )
    assert direct.loaded_librdkafka(str(maps)) is None  # two copies: never guess which one
    assert direct.loaded_librdkafka(str(tmp_path / "missing")) is None
    assert direct.enable(producer, False) is False
    assert not _route_fast.holds_header_list(probe)


def test_routing_on_header_lists_decides_what_the_reference_decides(
    kafka_bootstrap: str, bound: Producer, monkeypatch: pytest.MonkeyPatch
) -> None:
    suffix = uuid.uuid4().hex[:8]
    topics = {env: f"{env}.s{suffix}.ingest.all-v1" for env in ("prod", "dev")}
    variants = _sendable(VARIANTS[:-3]) + _extra_variants()  # the size edges are the reference's alone
    for env, topic in topics.items():
        send(kafka_bootstrap, topic, [(None, value, hs) for e, value, hs in variants if e == env])
    names = sorted(topics.values())

    def consume() -> list[Any]:
        return _consume(kafka_bootstrap, names, len(variants))

    # bound: plans keyed from librdkafka's lists, then the same records again on those plans
    on_lists = _new_plans()
    first_sight = _route(consume(), on_lists)
    records = consume()
    assert sum(map(_route_fast.holds_header_list, records)) == sum(1 for _, _, hs in variants if hs)
    reached: set[int] = set()
    original = batch_module._RecordRouter.__call__

    def spy(self: Any, record: Any, topic: str, tp: Any) -> None:
        reached.add(id(record))
        original(self, record, topic, tp)

    monkeypatch.setattr(batch_module._RecordRouter, "__call__", spy)
    planned = _route(records, on_lists)
    monkeypatch.undo()
    held = {id(r) for r in records if _route_fast.holds_header_list(r)}
    # what the compiled reader leaves to confluent-kafka's list: a null value, a name it would decode
    # (not ASCII), more headers than it takes
    converted = {id(r) for r in records if r.headers() and _list_path(r.headers())}
    assert len(held) >= 5 and len(converted - reached) == 4  # routed in C on the list of objects
    assert 63 in {len(r.headers()) for r in records if id(r) in held}  # just under the bound: read directly
    assert held == {id(r) for r in records if r.headers()} - reached - converted

    # unbound: plans keyed from confluent-kafka's lists; the Python reference without plans
    direct.unbind()
    on_objects = _new_plans()
    from_objects = _route(consume(), on_objects)
    reference = _route(consume(), None)
    assert on_lists.plans == on_objects.plans  # the same keys, the same decisions
    expected = _by_position(reference)
    for batch in (first_sight, planned, from_objects):
        assert _by_position(batch) == expected


class _WideRouter:
    """The test routes' router, declaring extra key headers (absent from every record), so that a plan
    reads `names` header values: the same decisions, a longer key."""

    def __init__(self, names: int) -> None:
        self._inner = compile_router(ROUTES)
        declared = tuple(dict.fromkeys((*COMBINATION_HEADERS, *self._inner.key_headers)))
        extra = tuple(f"x-key-{i}" for i in range(names - len(declared)))
        self.key_headers = (*self._inner.key_headers, *extra)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.mark.parametrize(("names", "on_list"), [(31, True), (32, True), (33, False)])
def test_plans_of_up_to_32_key_names_are_read_from_the_list(
    kafka_bootstrap: str, bound: Producer, names: int, on_list: bool
) -> None:
    """The list reader's bound on the key names a route set's plans read (MAX_KEY_NAMES in route_fast.c):
    under it and at it the values come from librdkafka's list; past it the loop reads them from
    confluent-kafka's objects. The decisions are the reference's either way."""
    topic = f"prod.s{uuid.uuid4().hex[:8]}.ingest.all-v1"
    values = [
        _valid("prod", title, category) for title in ("1234", "5678") for category in ("match_started", "x")
    ]
    send(kafka_bootstrap, topic, [(None, value, hs) for value, hs in values])
    router, guard = _WideRouter(names), RecordGuard()
    plans = RoutePlans(router, guard, dlq_unmatched=False)
    assert len(plans.key_names) == names

    def route(records: list[Any], with_plans: RoutePlans | None) -> Any:
        dedup = DedupStore(window_s=60, max_ids_per_partition=100)
        return route_batch(records, router, guard, dedup, plans=with_plans)

    route(_consume(kafka_bootstrap, [topic], len(values)), plans)  # first sight: every plan is built
    records = _consume(kafka_bootstrap, [topic], len(values))
    planned = route(records, plans)
    assert [_route_fast.holds_header_list(r) for r in records] == [on_list] * len(values)
    reference = _route(_consume(kafka_bootstrap, [topic], len(values)), None)
    assert _by_position(planned) == _by_position(reference)


def test_outputs_carry_the_records_own_bytes_and_report_failures(
    kafka_bootstrap: str, bound: Producer
) -> None:
    suffix = uuid.uuid4().hex[:8]
    ingest, out, small = (f"prod.s{suffix}.{part}.all-v1" for part in ("ingest", "out", "small"))
    items = [
        (
            f"k{i}".encode() if i % 3 else None,
            *_valid("prod", "1234", "match_started", payload=b"p" * (200 * i)),
        )
        for i in range(12)
    ]
    send(kafka_bootstrap, ingest, items)
    TopicEnsurer({"bootstrap.servers": kafka_bootstrap}, partitions=1).ensure(out)
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(small, 1, 1, config={"max.message.bytes": "1500"})])[small].result(30)
    sent = {value: (key, list(hs)) for key, value, hs in items}
    records = _consume(kafka_bootstrap, [ingest], len(items))
    assert all(_route_fast.holds_header_list(r) for r in records)

    produced: list[Any] = []

    def produce_spy(*args: Any, **kwargs: Any) -> None:  # confluent-kafka's API: what does not fit
        produced.append(args)
        bound.produce(*args, **kwargs)

    counter = _write_fast.DeliveryCounter()
    outputs = [Output(out, r, "all") for r in records] + [Output(small, r, "small") for r in records]
    counter.left = len(outputs)
    routed: dict[str, int] = {}
    assert _write_fast.produce_outputs(produce_spy, outputs, 0, counter, routed, bound) == (
        len(outputs),
        None,
    )
    assert produced == [] and routed == {"all": len(records), "small": len(records)}
    assert bound.flush(30) == 0

    # the broker refused the larger records for `small`: each failure reached the counter, the rest landed
    failed = {msg.value() for err, msg in counter.failures}
    assert all(
        err.code() == KafkaError.MSG_SIZE_TOO_LARGE and msg.topic() == small for err, msg in counter.failures
    )
    assert 0 < len(failed) < len(records)
    written = _consume(kafka_bootstrap, [out, small], 2 * len(records) - len(failed))
    landed_small = {m.value() for m in written if m.topic() == small}
    assert landed_small | failed == set(sent) and not landed_small & failed
    # every output is the record's own key, value and headers, in their order
    assert sorted((m.value(), m.key(), m.headers()) for m in written) == sorted(
        (value, sent[value][0], sent[value][1]) for value in [*sent, *landed_small]
    )


def test_a_record_whose_headers_were_converted_takes_the_api(kafka_bootstrap: str, bound: Producer) -> None:
    suffix = uuid.uuid4().hex[:8]
    ingest, out = f"prod.s{suffix}.ingest.all-v1", f"prod.s{suffix}.out.all-v1"
    send(kafka_bootstrap, ingest, [(None, *_valid("prod", "1234", "match_started")) for _ in range(3)])
    TopicEnsurer({"bootstrap.servers": kafka_bootstrap}, partitions=1).ensure(out)
    records = _consume(kafka_bootstrap, [ingest], 3)
    records[1].headers()  # converted: confluent-kafka gave its list away
    assert [_route_fast.holds_header_list(r) for r in records] == [True, False, True]
    produced: list[Any] = []

    def produce_spy(*args: Any, **kwargs: Any) -> None:
        produced.append((*args, kwargs["headers"]))
        bound.produce(*args, **kwargs)

    counter = _write_fast.DeliveryCounter()
    outputs = [Output(out, r, "all") for r in records]
    assert _write_fast.produce_outputs(produce_spy, outputs, 0, counter, {}, bound) == (3, None)
    assert produced == [(out, records[1].value(), records[1].key(), records[1].headers())]
    assert _write_fast.produce_outputs(produce_spy, outputs, 0, counter, {}, None) == (
        3,
        None,
    )  # no producer: the API
    assert len(produced) == 4
    assert bound.flush(30) == 0 and counter.failures == []
