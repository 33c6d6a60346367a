"""Benchmark 4: schema registry under concurrent clients: `GET /schemas/ids/{id}`, lookup
(`POST /subjects/{s}`) and idempotent re-registration (`POST /subjects/{s}/versions`): throughput and
p50/p99, vs the same requests against a bare FastAPI/uvicorn app.
Goal: id lookups >= 5k req/s with p99 < 10 ms."""

from __future__ import annotations

from bench import procs, profiling
from bench.context import BenchContext
from bench.http_load import LoadResult, Request, run_load, wait_http
from bench.report import BenchResult, Row
from common.config import RegistrySettings
from producers.schemas import SchemaCatalog, registry_client
from producers.workload import SCHEMAS, register_workload

GOAL_RATE = 5_000
GOAL_P99_MS = 10.0


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
    finally:
        registry.stop()
        baseline.stop()
        ctx.delete_topics([topic, f"{topic}_coordination"])
    return result


def add_rows(result: BenchResult, case: str, base: LoadResult, value: LoadResult) -> None:
    goal = case == "id lookup"
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
        p99 = point == "p99" and goal
        result.add(
            Row(
                case=f"{case} {point}",
                value=value.latencies_ms.get(point),
                unit="ms",
                baseline=base.latencies_ms.get(point),
                higher_is_better=False,
                goal=f"< {GOAL_P99_MS:g} ms" if p99 else "",
                goal_met=(value.latencies_ms.get(point, 1e9) < GOAL_P99_MS) if p99 else None,
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
