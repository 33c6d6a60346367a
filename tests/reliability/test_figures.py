"""The figures file survives two pytest lanes recording at once (scripts/test.sh runs the cluster tests
in a pytest-xdist lane beside the rest)."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from tests.reliability import figures

RECORDS_PER_LANE = 200


def _record_many(lane: str) -> None:
    for n in range(RECORDS_PER_LANE):
        figures.record_figures(f"{lane}-{n}", n=n, lane=lane)


def test_two_lanes_recording_at_once_lose_no_figure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "figures.json"
    monkeypatch.setattr(figures, "FIGURES_FILE", path)
    fork = multiprocessing.get_context("fork")  # the children see the patched path
    lanes = [fork.Process(target=_record_many, args=(lane,)) for lane in ("cluster", "shared")]
    for lane in lanes:
        lane.start()
    for lane in lanes:
        lane.join(timeout=60)
        assert lane.exitcode == 0
    data = json.loads(path.read_text())
    assert len(data) == 2 * RECORDS_PER_LANE
    assert data["cluster-199"]["n"] == 199 and data["shared-0"]["lane"] == "shared"
    assert not list(tmp_path.glob("*.tmp"))  # every partial file replaced the real one
