"""Benchmark: scale (not written yet)."""

from __future__ import annotations

from bench.context import BenchContext
from bench.report import BenchResult


def run(ctx: BenchContext) -> BenchResult:
    return BenchResult(name="scale", title="scale", status="partial", error="not written yet")
