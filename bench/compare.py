"""Before/after table of two result files, for design changes made to close a gap.

    .venv/bin/python -m bench.compare BEFORE.json AFTER.json [--out bench/results/changes.md]

BEFORE is usually an earlier committed `latest.json` (`git show REV:bench/results/latest.json > before.json`).
Rows are matched by (benchmark, case); ratios are each run's own same-run ratios, so a row compares
how far each version was from its baseline, not absolute speeds measured on different days.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bench.report import BenchResult, Row, _fmt, result_from_dict


def _rows(doc: dict[str, Any]) -> dict[tuple[str, str], Row]:
    results: list[BenchResult] = [result_from_dict(b) for b in doc.get("benchmarks", {}).values()]
    return {(r.name, row.case): row for r in results for row in r.rows}


def _ratio(row: Row | None) -> str:
    return f"{row.ratio:.2f}x" if row is not None and row.ratio is not None else "—"


def _started(doc: dict[str, Any], name: str) -> str:
    bench = doc.get("benchmarks", {}).get(name, {})
    return str(bench.get("run", {}).get("started_at") or doc.get("started_at", "?"))


def compare(before: dict[str, Any], after: dict[str, Any]) -> str:
    old, new = _rows(before), _rows(after)
    lines = [
        "# Before / after",
        "",
        "Each side's ratio is against the baseline measured in its own run (`python -m bench.compare`).",
        "",
        "| benchmark | case | before ratio | before value | after ratio | after value | goal | met now |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for key, row in new.items():
        prev = old.get(key)
        met = "" if row.goal_met is None else ("yes" if row.goal_met else "**no**")
        lines.append(
            f"| {key[0]} | {key[1]} | {_ratio(prev)} | {_fmt(prev.value, prev.unit) if prev else '—'} | "
            f"{_ratio(row)} | {_fmt(row.value, row.unit)} | {row.goal} | {met} |"
        )
    names = sorted({name for name, _ in new})
    lines += ["", "Runs compared:", ""]
    lines += [f"- **{n}**: before {_started(before, n)}, after {_started(after, n)}" for n in names]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compare")
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--out", type=Path, default=None, help="write here instead of printing")
    args = parser.parse_args(argv)
    text = compare(json.loads(args.before.read_text()), json.loads(args.after.read_text()))
    if args.out is None:
        print(text, end="")
    else:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
