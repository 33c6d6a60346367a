"""The reconciliation checker on plain data: every kind of discrepancy is counted, nothing else is."""

from __future__ import annotations

from common.headers import Headers
from common.limits import MAX_RECORD_BYTES
from refinery.reconcile.reconciler import Reconciler
from refinery.routing import dlq
from refinery.routing.router import compile_router
from refinery.routing.rules import load_route_set
from tests.refinery.worker.worker_harness import record

ROUTES = """
routes:
  - name: by-title
    match: {env: prod}
    to: {template: "{env}.{source}.{title}.all-v1"}
  - name: kills
    match: {category: player_killed}
    to: {template: "{env}.{source}.all.kills-v1"}
  - name: once
    match: {category: once}
    to: {template: "{env}.{source}.all.once-v1"}
    dedup: true
  - name: by-team
    match: {category: team}
    to: {template: "{env}.{source}.{attribute.team}.team-v1"}
"""
INGEST = "prod.s.ingest.all-v1"


def dead_letter(coordinate: tuple[str, int, int], reason: str = "missing_header") -> Headers:
    topic, partition, offset = coordinate
    return [(dlq.REASON, reason.encode()), (dlq.TOPIC, topic.encode()),
            (dlq.PARTITION, str(partition).encode()), (dlq.OFFSET, str(offset).encode())]  # fmt: skip


def reconciler() -> Reconciler:
    return Reconciler(compile_router(load_route_set(ROUTES)))  # the production limits


def test_clean_run_with_fan_out_and_unmatched() -> None:
    r = reconciler()
    kill_value, kill = record("prod", "s", "1234", "player_killed")
    dev_value, dev = record("dev", "s", "1234", "other")  # unmatched on a dev ingest topic
    r.expect((INGEST, 0, 0), kill_value, kill)
    r.expect(("dev.s.ingest.all-v1", 0, 0), dev_value, dev)
    assert r.expected_topics == {"prod.s.1234.all-v1", "prod.s.all.kills-v1"}
    r.observe_derived("prod.s.1234.all-v1", kill)
    r.observe_derived("prod.s.all.kills-v1", kill)
    report = r.finish()
    assert report.clean
    assert (report.sent, report.expected_deliveries, report.delivered, report.unmatched) == (2, 2, 2, 1)


def test_lost_duplicated_misrouted_and_unknown_ids_are_counted() -> None:
    r = reconciler()
    sent = [record("prod", "s", "1234", "x") for _ in range(3)]
    for offset, (value, headers) in enumerate(sent):
        r.expect((INGEST, 0, offset), value, headers)
    r.observe_derived("prod.s.1234.all-v1", sent[0][1])
    r.observe_derived("prod.s.1234.all-v1", sent[0][1])  # duplicate
    r.observe_derived("prod.s.all.kills-v1", sent[1][1])  # misrouted; and its expected copy is lost
    r.observe_derived("prod.s.1234.all-v1", record("prod", "s", "1234", "x")[1])  # never sent
    report = r.finish()
    assert (report.lost, report.duplicated, report.misrouted) == (2, 1, 2)
    assert report.lost_by_topic == {"prod.s.1234.all-v1": 2} and report.duplicated_by_topic == {
        "prod.s.1234.all-v1": 1
    }
    assert not report.clean
    assert len(report.examples["lost"]) == 2 and len(report.examples["unknown_id"]) == 1


def test_dedup_routes_expect_one_copy_of_a_resent_id() -> None:
    r = reconciler()
    value, headers = record("dev", "s", "1", "once")
    r.expect(("dev.s.ingest.all-v1", 0, 0), value, headers)
    r.expect(("dev.s.ingest.all-v1", 0, 1), value, headers)  # the producer resent it
    r.observe_derived("dev.s.all.once-v1", headers)
    assert r.finish().clean
    r2 = reconciler()
    r2.expect(("dev.s.ingest.all-v1", 0, 0), value, headers)
    r2.observe_derived("dev.s.all.once-v1", headers)
    r2.observe_derived("dev.s.all.once-v1", headers)
    assert r2.finish().duplicated == 1


def test_dead_letters_reconcile_by_ingest_coordinates() -> None:
    r = reconciler()
    good_value, good = record("prod", "s", "1", "x")
    # the template needs attribute.team: a route error, and the by-title copy
    no_team_value, no_team = record("prod", "s", "1", "team")
    cases = {
        (INGEST, 0, 0): (b"\x00random", None),  # no headers
        (INGEST, 0, 1): (b"x" * (MAX_RECORD_BYTES - 100), good),  # over the limit once headers count
        (INGEST, 1, 0): (b"v", [*good, ("ce_env", b"prod")]),  # duplicated header
        (INGEST, 1, 1): (good_value, [(k, v) for k, v in good if k != "ce_env"]),
        (INGEST, 2, 0): (*record("dev", "s", "1", "x"),),  # dev data on a prod ingest topic
        (INGEST, 2, 1): (no_team_value, no_team),
    }
    for coordinate, (value, headers) in cases.items():
        r.expect(coordinate, value, headers)
    for coordinate in cases:
        r.observe_dead_letter(dead_letter(coordinate))
    r.observe_derived("prod.s.1.all-v1", no_team)  # the route that resolved still delivers
    r.observe_dead_letter(dead_letter(("other.s.ingest.all-v1", 0, 0)))  # not ours: ignored
    report = r.finish()
    assert report.clean, report
    assert (report.dlq_expected, report.dlq_found, report.delivered) == (6, 6, 1)

    r = reconciler()
    for coordinate, (value, headers) in cases.items():
        r.expect(coordinate, value, headers)
    r.observe_dead_letter(dead_letter((INGEST, 0, 0)))
    r.observe_dead_letter(dead_letter((INGEST, 0, 0)))
    r.observe_dead_letter([(dlq.REASON, b"x")])  # no coordinates: not from a worker
    report = r.finish()
    assert (report.dlq_lost, report.dlq_duplicated, report.dlq_unexpected) == (5, 1, 1)
    assert report.lost == 1 and not report.clean


def test_destinations_outside_the_allowed_envs_are_expected_in_the_dlq() -> None:
    r = Reconciler(compile_router(load_route_set(ROUTES)), allowed_envs=["prod"])
    value, headers = record("dev", "s", "1", "player_killed")
    r.expect(("dev.s.ingest.all-v1", 0, 0), value, headers)
    r.observe_dead_letter(dead_letter(("dev.s.ingest.all-v1", 0, 0), "topic_rejected"))
    report = r.finish()
    assert report.clean and report.expected_deliveries == 0 and report.dlq_expected == 1
