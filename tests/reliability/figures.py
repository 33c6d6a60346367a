"""Figures the reliability tests measured (messages sent, lost, duplicated, inputs fuzzed...), merged into
`.run/reliability/figures.json` (git-ignored) so docs/reliability.md can quote an actual run."""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any

from common.config import REPO_ROOT

FIGURES_FILE = REPO_ROOT / ".run" / "reliability" / "figures.json"


def record_figures(test: str, **figures: Any) -> None:
    """Store this test's figures (replacing its previous ones) and print them for `pytest -s`.

    Two pytest processes on one checkout (a package run beside the suite) may record at once: the
    read-modify-write holds an exclusive lock, and the file is replaced whole, so neither reads the other's
    half-written file (which would parse as nothing and drop every figure recorded before)."""
    path = Path(FIGURES_FILE)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            data = {}
        data[test] = {**figures, "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(data, indent=2, sort_keys=True))
        os.replace(partial, path)
    print(f"figures {test}: {json.dumps(figures, sort_keys=True)}")
