"""Benchmark results: the data model, and the JSON + Markdown files written under `bench/results/`.

Every figure is a `Row`: the product's value next to the baseline measured in the same run, so the ratio
(printed first) survives a noisy, shared machine better than the absolute number (printed second).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Row:
    """One measured figure. `ratio` is value / baseline; `higher_is_better` says which way is good."""

    case: str
    value: float | None
    unit: str
    baseline: float | None = None
    higher_is_better: bool = True
    goal: str = ""
    goal_met: bool | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.value is None or self.baseline is None or self.value <= 0 or self.baseline <= 0:
            return None  # a ratio of growths or of signed numbers means nothing
        return self.value / self.baseline

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["ratio"] = None if self.ratio is None else round(self.ratio, 4)
        return doc


@dataclass
class BenchResult:
    """What one benchmark measured: its parameters, its same-run baseline and its rows."""

    name: str
    title: str
    params: dict[str, Any] = field(default_factory=dict)
    baseline: dict[str, Any] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    status: str = "ok"  # ok | partial (product not plugged in yet) | error
    error: str = ""
    duration_s: float = 0.0
    machine_before: dict[str, Any] = field(default_factory=dict)  # bench.machine.before_benchmark

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "status": self.status,
            "error": self.error,
            "duration_s": round(self.duration_s, 2),
            "params": self.params,
            "baseline": self.baseline,
            "rows": [r.to_dict() for r in self.rows],
            "extra": self.extra,
            "machine_before": self.machine_before,
        }


def result_from_dict(doc: dict[str, Any]) -> BenchResult:
    """A result read back from a results JSON file (to merge a partial run into it)."""
    rows = [Row(**{k: v for k, v in row.items() if k != "ratio"}) for row in doc.get("rows", [])]
    kept = ("name", "title", "params", "baseline", "extra", "status", "error", "machine_before")
    fields = {k: doc[k] for k in kept if k in doc}
    return BenchResult(**fields, rows=rows, duration_s=doc.get("duration_s", 0.0))


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def _met(row: Row) -> str:
    if row.goal_met is None:
        return ""
    return "yes" if row.goal_met else "**no**"


def row_line(row: Row) -> str:
    """A one-line rendering for the progress display: ratio first, absolute second."""
    ratio = f"{row.ratio:.2f}x" if row.ratio is not None else "n/a"
    text = f"{row.case}: {ratio} of baseline, {_fmt(row.value, row.unit)} (baseline {_fmt(row.baseline)})"
    if row.goal:
        verdict = {None: "n/a", True: "met", False: "MISSED"}[row.goal_met]
        text += f" goal {row.goal}: {verdict}"
    return text + (f" [{row.note}]" if row.note else "")


def markdown(run: dict[str, Any], results: list[BenchResult]) -> str:
    env = run["environment"]
    lines = [
        f"# Benchmark results ({run['mode']} run, {run['started_at']})",
        "",
        f"`{run['command']}` — {env['cpu_count']} CPUs, Python {env['python']}, "
        f"confluent-kafka {env['confluent_kafka']} (librdkafka {env['librdkafka']}), "
        f"faust {env['faust']}, Kafka {env['kafka']}, broker {env['bootstrap']}.",
        "Ratios compare with the baseline measured in the same run (see `latest.json` for parameters).",
        *(
            [f"Started on an emptied broker (what earlier benchmarks wrote deleted): {', '.join(fresh)}."]
            if (fresh := run.get("on_fresh_broker"))
            else []
        ),
        *(
            [
                f"Merged: benchmarks not re-run keep the figures of the run started {run['updated_from']} "
                "(each benchmark's `run` in the JSON says which run measured it)."
            ]
            if run.get("updated_from")
            else []
        ),
        "",
        "| benchmark | case | ratio | value | baseline | goal | met |",
        "| --- | --- | ---: | ---: | ---: | --- | --- |",
    ]
    for res in results:
        if not res.rows:
            lines.append(f"| {res.name} | ({res.status}) {res.error[:80]} | | | | | |")
        for row in res.rows:
            ratio = f"{row.ratio:.2f}x" if row.ratio is not None else "—"
            case = row.case + (f" ({row.note})" if row.note else "")
            lines.append(
                f"| {res.name} | {case} | {ratio} | {_fmt(row.value, row.unit)} | "
                f"{_fmt(row.baseline, row.unit)} | {row.goal} | {_met(row)} |"
            )
    lines += _machine_lines(results)
    baselines = [f"- **{r.name}**: {r.baseline.get('description', '')}" for r in results if r.baseline]
    if baselines:
        lines += ["", "Baselines:", "", *baselines]
    return "\n".join(lines) + "\n"


def _machine_lines(results: list[BenchResult]) -> list[str]:
    measured = [r for r in results if r.machine_before]
    if not measured:
        return []
    lines = [
        "",
        "Machine at each benchmark's start (waited until all CPUs were idle, bounded; then a fixed Python "
        "workload timed: lower is a faster core):",
        "",
        "| benchmark | waited | CPUs busy then | idle | calibration |",
        "| --- | ---: | ---: | --- | ---: |",
    ]
    for res in measured:
        before = res.machine_before
        lines.append(
            f"| {res.name} | {before.get('waited_s', 0):.0f} s | {before.get('busy_pct', 0):.0f} % | "
            f"{'yes' if before.get('idle') else '**no**'} | {before.get('calibration_ms', 0):.1f} ms |"
        )
    return lines


def write_results(
    out_dir: Path, stem: str, run: dict[str, Any], results: list[BenchResult], *, update: bool = False
) -> tuple[Path, Path]:
    """Write `{stem}.json` and `{stem}.md` into `out_dir`; return both paths. With `update`, benchmarks
    of an earlier run in the same files are kept unless this run measured them again (each keeps the
    run facts it was measured with under `run`)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"{stem}.json"
    doc = {**run, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    facts = {k: v for k, v in doc.items() if k != "benchmarks"}
    merged = {r.name: {**r.to_dict(), "run": facts} for r in results}
    if update and json_path.exists():
        earlier = json.loads(json_path.read_text())
        kept = {k: v for k, v in earlier.get("benchmarks", {}).items() if k not in merged}
        for bench in kept.values():
            bench.setdefault("run", {k: v for k, v in earlier.items() if k != "benchmarks"})
        merged = {**kept, **merged}
        doc["updated_from"] = earlier.get("started_at")
        results = [result_from_dict(b) for b in merged.values()]
    doc["benchmarks"] = merged
    md_path = out_dir / f"{stem}.md"
    json_path.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
    md_path.write_text(markdown(doc, results))
    return json_path, md_path
