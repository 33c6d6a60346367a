"""`--where` filters in the route-set syntax, compiled by the route set's own parser and router.

    compile_where(["env=prod", "title=2*", "attribute.platform=pc"])  # -> a test on record headers

Each clause is `FIELD=VALUE` with a route-set field (`env`, `source`, `title`, `category`, `version`,
`schema_id`, `format`, `producer`, `message_id`, `attribute.<name>`; `attr.<name>`, the header
spelling, is accepted too). A VALUE with `*`, `?` or `[` is a glob (`{glob: VALUE}`, as in a route
set), otherwise a plain value; `FIELD!=VALUE` negates. All clauses must hold. The clauses become one
route (`match: {all: [...]}`) loaded by `refinery.routing.rules.load_route_set` and compiled by
`refinery.routing.router.compile_router`, so a filter means exactly what a route with that match
means, and an unknown field is refused with the route set's own message (InvalidInputError).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from common.errors import InvalidInputError
from common.headers import ATTRIBUTE_PREFIX
from refinery.routing.router import RoutingError, compile_router
from refinery.routing.rules import RuleError, load_route_set

HeaderTest = Callable[[Mapping[str, bytes]], bool]
_GLOB_CHARS = frozenset("*?[")
_TEMPLATE = "{env}.{source}.{title}.{category}-v{version}"


def _condition(clause: str) -> dict[str, Any]:
    field, sep, value = clause.partition("=")
    negate = field.endswith("!")
    field = field.removesuffix("!").strip()
    if not sep or not field:
        raise InvalidInputError(
            f"--where {clause!r} must look like FIELD=VALUE or FIELD!=VALUE, e.g. title=1234, "
            "attribute.platform=pc"
        )
    if field.startswith(ATTRIBUTE_PREFIX):  # the header spelling (attr.platform) of attribute.platform
        field = "attribute." + field[len(ATTRIBUTE_PREFIX) :]
    test: Any = {"glob": value} if _GLOB_CHARS & set(value) else value
    return {field: {"not": test} if negate else test}


def _route_set_text(conditions: list[dict[str, Any]]) -> str:
    match = {"all": conditions}
    return json.dumps({"routes": [{"name": "where", "match": match, "to": {"template": _TEMPLATE}}]})


def compile_where(clauses: Sequence[str]) -> HeaderTest | None:
    """A test on a record's headers (name -> bytes) for the clauses; None when there are none."""
    if not clauses:
        return None
    conditions = []
    for clause in clauses:
        condition = _condition(clause)
        try:
            load_route_set(_route_set_text([condition]))
        except RuleError as exc:
            where = f"route 'where': {exc.field}: " if exc.field else "route 'where': "
            message = str(exc).removeprefix(where).replace(", or all/any/not", "")
            raise InvalidInputError(f"--where {clause!r}: {message}") from None
        conditions.append(condition)
    router = compile_router(load_route_set(_route_set_text(conditions)))

    def test(headers: Mapping[str, bytes]) -> bool:
        try:
            return bool(router.route(headers))
        except RoutingError:  # the route matched; only its (unused) destination could not be named
            return True

    return test
