"""Routing plans: what `route_batch` decides for one header combination, decided once.

Everything the guard and the router decide for a record, except what depends on the record itself (its
message id, value, key and size), depends only on the ingest topic and a few header values: the
required ones the guard validates, and the ones the routes read. A plan holds that decision for one
such combination: the envelope fields the headers stand for (for the compiled envelope check), the
record's origin for the counts, and its destinations with their env checked. The compiled routing loop
(`route_fast.c`) looks plans up by those values and routes the ordinary record without running Python
code for it; any record a plan does not cover (a rejection, a routing error, a dedup route, a DLQ copy
of an unmatched record, a schema-id check, an envelope only the parser can judge, a record near the
size limit) takes the Python path in `refinery.routing.batch`, which stays the reference.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from common import contract
from common import headers as h
from common.errors import TopicNameError
from refinery.routing.guards import COMBINATION_HEADERS, RecordGuard, Rejection, topic_env
from refinery.routing.router import RoutingError

try:  # compiled with the package (setup.py); `route_batch` without it runs the Python path only
    from refinery.routing._envelope_fast import check as _envelope_check
    from refinery.routing._route_fast import route_records
except ImportError:  # pragma: no cover - a machine that could not compile them
    route_records = None
    _envelope_check = None
COMPILED_ROUTING = route_records is not None

PLAN_CACHE_LIMIT = 100_000
# (the middle of the expected envelope or None to skip that check, (env, title, category), ((topic,
# route), ...)); None: records of this combination take the Python path
Plan = tuple[bytes | None, tuple[bytes, bytes, bytes], tuple[tuple[str, str], ...]]


class RoutePlans:
    """The plans of one router and guard, built on first sight of each header combination."""

    def __init__(self, router: Any, guard: RecordGuard, *, dlq_unmatched: bool) -> None:
        self.router = router
        self.guard = guard
        self.dlq_unmatched = dlq_unmatched
        route_headers = tuple(getattr(router, "key_headers", ()))
        # the values a plan depends on, after the ingest topic (each header once, in a fixed order)
        self.key_names = tuple(dict.fromkeys((*COMBINATION_HEADERS, *route_headers)))
        self.plans: dict[tuple[Any, ...], Plan | None] = {}
        # routers without declared key headers, and schema-id checks (a registry call with its own
        # expiry), are never planned: every record takes the Python path
        self.enabled = bool(route_headers) and not guard.checks_schema_ids and route_records is not None
        self.context = (
            self.plans, self.plan, self.key_names, guard.exact_size_from,
            contract.MAX_MESSAGE_ID_BYTES, h.MESSAGE_ID, _envelope_check,
        )  # fmt: skip

    def fits(self, router: Any, guard: RecordGuard, dlq_unmatched: bool) -> bool:
        return (
            self.enabled
            and router is self.router
            and guard is self.guard
            and dlq_unmatched == self.dlq_unmatched
        )

    def plan(self, topic: str, headers: Mapping[str, bytes], key: tuple[Any, ...]) -> Plan | None:
        """Decide, and remember under `key` (the compiled loop's lookup key: the topic, then the values
        of `key_names`), the plan of this record's combination (`headers` passed the checks that do not
        depend on the combination: present, no duplicate names, a valid message id)."""
        found = self._decide(topic, headers)
        if len(self.plans) >= PLAN_CACHE_LIMIT:
            self.plans.clear()
        self.plans[key] = found
        return found

    def _decide(self, topic: str, headers: Mapping[str, bytes]) -> Plan | None:
        try:
            expected = self.guard.check_headers(topic, headers)
            destinations = self.router.route(headers)
        except (Rejection, RoutingError):
            return None
        middle = None
        if self.guard.verify_envelope:
            middle = expected[1]
            if middle is None:  # fields the compiled check cannot compare: the parser decides
                return None
        env = headers[h.ENV]
        if not destinations and self.dlq_unmatched:
            return None
        targets = []
        for dest in destinations:
            if dest.dedup:
                return None
            try:
                if topic_env(dest.topic) != env:
                    return None
            except TopicNameError:
                return None
            targets.append((dest.topic, dest.route))
        return middle, (env, headers[h.TITLE], headers[h.CATEGORY]), tuple(targets)
