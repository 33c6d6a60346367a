"""`refinery --help` lists our commands; each command has its own help (no Kafka needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from refinery.control import app as control_app

REFINERY = Path(sys.executable).parent / "refinery"


def helptext(*args: str) -> str:
    proc = subprocess.run([str(REFINERY), *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_help_lists_our_commands_and_each_has_its_own(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["refinery", "--help"])
    control_app.main()  # in-process: our help is printed before Faust's CLI is involved
    top = capsys.readouterr().out
    commands = [
        line.strip().split("  ")[0] for line in top.splitlines() if line.startswith("  ") and line[2] != " "
    ]
    assert commands == [
        "worker", "routes validate FILE", "routes diff FILE", "routes apply FILE", "routes show",
        "routes history", "dlq replay",
    ]  # fmt: skip
    assert "Manage LiveCheck" not in top and "refinery --faust-help" in top
    routes = helptext("routes", "--help")
    assert (
        "{validate|diff|apply|show|history}" in routes and "show           the live set (read-only" in routes
    )
    dlq = helptext("dlq", "--help")
    assert "{replay}" in dlq and "--reason TEXT" in dlq and "--since TEXT" in dlq and "--dry-run" in dlq
