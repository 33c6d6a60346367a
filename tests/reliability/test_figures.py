"""The figures file survives two pytest processes recording at once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from common.config import REPO_ROOT

RECORDS_PER_LANE = 200
# Fresh interpreters, not forks: a fork of a pytest process that ran Kafka clients inherits their threads'
# locks and may crash.
RECORD_MANY = """
import sys
from pathlib import Path
from tests.reliability import figures
figures.FIGURES_FILE = Path(sys.argv[1])
for n in range(int(sys.argv[3])):
    figures.record_figures(f"{sys.argv[2]}-{n}", n=n, lane=sys.argv[2])
"""


def test_two_lanes_recording_at_once_lose_no_figure(tmp_path: Path) -> None:
    path = tmp_path / "figures.json"
    lanes = [
        subprocess.Popen(
            [sys.executable, "-c", RECORD_MANY, str(path), lane, str(RECORDS_PER_LANE)],
            cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        for lane in ("cluster", "shared")
    ]  # fmt: skip
    for lane in lanes:
        _, errors = lane.communicate(timeout=60)
        assert lane.returncode == 0, errors
    data = json.loads(path.read_text())
    assert len(data) == 2 * RECORDS_PER_LANE
    assert data["cluster-199"]["n"] == 199 and data["shared-0"]["lane"] == "shared"
    assert not list(tmp_path.glob("*.tmp"))  # every partial file replaced the real one
