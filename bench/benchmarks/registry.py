"""Benchmark 4: schema registry under concurrent clients: `GET /schemas/ids/{id}`, lookup
(`POST /subjects/{s}`) and idempotent re-registration (`POST /subjects/{s}/versions`): throughput and
p50/p99, vs the same requests against a bare FastAPI/uvicorn app.
Goal: id lookups >= 5k req/s with p99 < 10 ms.

Writes: registering a new schema under a new subject, and soft-deleting a subject, each with 1 and 10
clients; every request writes a record to `_schemas` and is answered once it is read back. The baseline
is the same bare app answering the same number of (register-shaped) POSTs with the same clients.
Goal: a sequential new-subject registration p50 < 20 ms."""

from __future__ import annotations

import json

from bench import procs, profiling
from bench.context import BenchContext
from bench.http_load import LoadResult, Request, run_load, wait_http
from bench.report import BenchResult, Row
from common.config import RegistrySettings
from producers.schemas import SchemaCatalog, registry_client
from producers.workload import SCHEMAS, register_workload

GOAL_RATE = 5_000
GOAL_P99_MS = 10.0
GOAL_WRITE_P50_MS = 20.0
WRITE_CLIENTS = (1, 10)


def request_sets(ids: list[int], subjects: list[tuple[str, dict]]) -> dict[str, list[Request]]:
    return {
        "id lookup": [Request("GET", f"/schemas/ids/{i}") for i in ids],
        "subject lookup": [Request("POST", f"/subjects/{s}", body) for s, body in subjects],
        "re-register": [Request("POST", f"/subjects/{s}/versions", body) for s, body in subjects],
    }


def register(url: str) -> tuple[list[int], list[tuple[str, dict]]]:
    """Register the workload schemas; return their ids and (subject, body) pairs for lookups."""
    catalog = SchemaCatalog(registry_client(RegistrySettings(url=url)))
    try:
        resolved = register_workload(catalog)
    finally:
        catalog.close()
    specs = {(s.category, s.version): s for s in SCHEMAS}
    subjects = []
    for r in resolved:
        assert r.subject is not None
        category = r.subject.split(".", 1)[1].removesuffix("-value")
        spec = specs[(category, r.version or 1)]
        body = {"schema": spec.text}
        if spec.schema_type != "AVRO":
            body["schemaType"] = spec.schema_type
        subjects.append((r.subject, body))
    return sorted({r.schema_id for r in resolved}), subjects


def run(ctx: BenchContext) -> BenchResult:
    concurrency = 8
    duration = ctx.pick(2.0, 20.0)
    result = BenchResult(
        name="registry",
        title=__doc__.split("\n")[0],
        params={"concurrency": concurrency, "duration_s": duration, "client": "aiohttp, keep-alive"},
        baseline={"description": "bare FastAPI app on uvicorn (one process) answering constant bodies"},
    )
    topic = ctx.name("schemas")
    base_port, reg_port = procs.free_port(), procs.free_port()
    baseline = procs.start("http-baseline", ["-m", "bench.http_baseline", str(base_port)])
    registry = procs.start(
        "registry",
        [
            "-m",
            "schema_registry",
            "--port",
            str(reg_port),
            "--topic",
            topic,
            "--bootstrap-servers",
            ctx.bootstrap,
        ],
        {"REFINERY_LOG_LEVEL": "WARNING"},
    )
    reg_url, base_url = f"http://127.0.0.1:{reg_port}", f"http://127.0.0.1:{base_port}"
    try:
        wait_http(f"{base_url}/subjects")
        wait_http(f"{reg_url}/subjects", timeout=90)
        ids, subjects = register(reg_url)
        result.params.update(schema_ids=len(ids), subjects=len(subjects))
        for case, requests in request_sets(ids, subjects).items():
            base = run_load(base_url, requests, concurrency=concurrency, duration_s=duration)
            name = "registry-" + case.replace(" ", "-")
            spied = profiling.spy(registry.pid, duration, ctx.profile_path(name)) if ctx.profile else None
            value = run_load(reg_url, requests, concurrency=concurrency, duration_s=duration)
            profiling.finish(spied, ctx.profile_path(name))
            add_rows(result, case, base, value)
        run_writes(ctx, result, reg_url, base_url, duration)
    finally:
        registry.stop()
        baseline.stop()
        ctx.delete_topics([topic, f"{topic}_coordination"])
    return result


def add_rows(result: BenchResult, case: str, base: LoadResult, value: LoadResult) -> None:
    goal = case == "id lookup"
    write_goal = case == "new subject, 1 client"
    note = f"{value.errors} errors" if value.errors else ""
    result.add(
        Row(
            case=f"{case} throughput",
            value=value.rate,
            unit="req/s",
            baseline=base.rate,
            goal=f">= {GOAL_RATE:,} req/s" if goal else "",
            goal_met=(value.rate >= GOAL_RATE and not value.errors) if goal else None,
            note=note,
        )
    )
    for point in ("p50", "p99"):
        limit = GOAL_P99_MS if (point == "p99" and goal) else None
        if point == "p50" and write_goal:
            limit = GOAL_WRITE_P50_MS
        result.add(
            Row(
                case=f"{case} {point}",
                value=value.latencies_ms.get(point),
                unit="ms",
                baseline=base.latencies_ms.get(point),
                higher_is_better=False,
                goal=f"< {limit:g} ms" if limit else "",
                goal_met=(value.latencies_ms.get(point, 1e9) < limit and not value.errors) if limit else None,
                note=f"{value.requests} requests" if case.startswith(("new subject", "soft delete")) else "",
            )
        )
    result.extra[case] = {
        "registry": {
            "statuses": value.statuses,
            "latency_ms": value.latencies_ms,
            "requests": value.requests,
        },
        "baseline": {"statuses": base.statuses, "latency_ms": base.latencies_ms, "requests": base.requests},
    }


def new_subject_requests(prefix: str, count: int) -> list[Request]:
    """`count` registrations, each a new Avro schema (so a new id) under a new subject."""
    return [
        Request(
            "POST",
            f"/subjects/{prefix}-{i}-value/versions",
            {
                "schema": json.dumps(
                    {"type": "record", "name": f"BenchWrite{i}", "fields": [{"name": "id", "type": "long"}]}
                )
            },
        )
        for i in range(count)
    ]


def run_writes(ctx: BenchContext, result: BenchResult, reg_url: str, base_url: str, duration: float) -> None:
    """New-subject registrations, then soft deletes of the subjects they created: 1 and 10 clients.

    Each request is sent once (no cycling, no warm-up pass: a repeat would be an idempotent re-register
    or a 404); the read phases have warmed the registry up. The bare app has no DELETE route, so the
    delete rows' baseline is its register route, sent as many times with as many clients."""
    cap = ctx.pick(600, 4000)
    result.params.update(write_clients=list(WRITE_CLIENTS), write_cap=cap)
    created: list[str] = []
    for clients in WRITE_CLIENTS:
        requests = new_subject_requests(f"bench-w{clients}-{ctx.run_id}", cap + clients)
        base = _once(base_url, requests, clients, duration, cap)
        value = _once(reg_url, requests, clients, duration, cap)
        created += [r.path.removesuffix("/versions") for r in requests[: value.requests]]
        add_rows(result, f"new subject, {_clients(clients)}", base, value)
    for clients, paths in ((1, created[0::2]), (10, created[1::2])):
        count = max(0, len(paths) - clients)  # a client may start one more request than the count
        base = _once(base_url, new_subject_requests("base", len(paths)), clients, duration, count)
        value = _once(reg_url, [Request("DELETE", p) for p in paths], clients, duration, count)
        add_rows(result, f"soft delete, {_clients(clients)}", base, value)


def _clients(n: int) -> str:
    return f"{n} client" + ("s" if n > 1 else "")


def _once(url: str, requests: list[Request], clients: int, duration: float, count: int) -> LoadResult:
    """At most `count` requests (the list holds `clients` more), each sent once, no warm-up."""
    return run_load(url, requests, concurrency=clients, duration_s=duration, max_requests=count, warmup_s=0.0)
