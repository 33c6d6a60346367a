"""`refinery-supervise`: a command that exits with code 70 (the worker's watchdog) is started again within
a bounded budget; any other code, a spent budget or a SIGTERM ends the supervisor. Real child processes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from devstack.supervise import Supervisor

# Each run appends a line to the count file and exits with the code at that position of CODES (the last
# one repeated); "sleep" instead waits to be signalled.
CHILD = """
import sys, time
count, codes = sys.argv[1], sys.argv[2].split(",")
with open(count, "a") as f:
    f.write("run\\n")
runs = len(open(count).read().splitlines())
code = codes[min(runs, len(codes)) - 1]
if code == "sleep":
    time.sleep(60)
sys.exit(int(code))
"""


def child(tmp_path: Path, codes: str) -> list[str]:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    return [sys.executable, str(script), str(tmp_path / "runs"), codes]


def runs(tmp_path: Path) -> int:
    return len((tmp_path / "runs").read_text().splitlines())


def test_code_70_is_started_again_and_the_next_exit_code_ends_it(tmp_path: Path) -> None:
    said: list[str] = []
    supervisor = Supervisor(child(tmp_path, "70,70,3"), delay_s=0.01, say=said.append)
    assert supervisor.run() == 3
    assert runs(tmp_path) == 3
    assert len(said) == 2 and "exited with code 70; starting it again (restart 2 of 5 in 300 s)" in said[1]


def test_other_codes_end_it_at_once(tmp_path: Path) -> None:
    for code in ("0", "1", "2"):
        (tmp_path / "runs").unlink(missing_ok=True)
        assert Supervisor(child(tmp_path, code), delay_s=0.01, say=lambda _: None).run() == int(code)
        assert runs(tmp_path) == 1


def test_the_restart_budget_is_bounded(tmp_path: Path) -> None:
    """A command that wedges forever is not restarted forever: 5 restarts (the default) in the window."""
    said: list[str] = []
    assert Supervisor(child(tmp_path, "70"), delay_s=0.0, say=said.append).run() == 70
    assert runs(tmp_path) == 6
    assert "5 restarts in 300 s spent, giving up" in said[-1]


def test_sigterm_reaches_the_command_and_nothing_is_started_again(tmp_path: Path) -> None:
    """As `refinery-stack down` stops it: the supervisor and its command share a process group."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack.supervise", "--", *child(tmp_path, "sleep")],
        cwd=Path(__file__).parents[2], start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while not (tmp_path / "runs").exists():
        assert time.monotonic() < deadline, "the command never started"
        time.sleep(0.05)
    time.sleep(0.3)  # the child's Python is up and sleeping
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 128 + signal.SIGTERM  # the command's end, as a shell reports it
    assert runs(tmp_path) == 1


def test_the_command_is_required() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "devstack.supervise"], capture_output=True, text=True,
        cwd=Path(__file__).parents[2], timeout=30,
    )  # fmt: skip
    assert done.returncode == 2 and "give the command to run after --" in done.stderr


def test_the_local_stack_runs_its_workers_under_the_supervisor() -> None:
    from devstack.stack import StackPlan

    workers = [s for s in StackPlan().services() if s.name.startswith("worker-")]
    assert workers and all(Path(s.argv[0]).name == "refinery-supervise" for s in workers)
    assert all(
        s.argv[1] == "--" and Path(s.argv[2]).name == "refinery" and s.argv[3:] == ["worker"] for s in workers
    )
