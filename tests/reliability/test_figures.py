"""The figures file survives two pytest processes recording at once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from common.config import REPO_ROOT

RECORDS_PER_WRITER = 200
# Fresh interpreters, not forks: a fork of a pytest process that ran Kafka clients inherits their threads'
# locks and may crash.
RECORD_MANY = """
import sys
from pathlib import Path
from tests.reliability import figures
figures.FIGURES_FILE = Path(sys.argv[1])
for n in range(int(sys.argv[3])):
    figures.record_figures(f"{sys.argv[2]}-{n}", n=n, writer=sys.argv[2])
"""


def test_two_processes_recording_at_once_lose_no_figure(tmp_path: Path) -> None:
    path = tmp_path / "figures.json"
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", RECORD_MANY, str(path), writer, str(RECORDS_PER_WRITER)],
            cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        for writer in ("cluster", "shared")
    ]  # fmt: skip
    for writer in writers:
        _, errors = writer.communicate(timeout=60)
        assert writer.returncode == 0, errors
    data = json.loads(path.read_text())
    assert len(data) == 2 * RECORDS_PER_WRITER
    assert data["cluster-199"]["n"] == 199 and data["shared-0"]["writer"] == "shared"
    assert not list(tmp_path.glob("*.tmp"))  # every partial file replaced the real one
