"""Benchmark: registry (not written yet)."""

from __future__ import annotations

from bench.context import BenchContext
from bench.report import BenchResult


def run(ctx: BenchContext) -> BenchResult:
    return BenchResult(name="registry", title="registry", status="partial", error="not written yet")
