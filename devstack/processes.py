"""Background processes tracked by pid files: the local broker (`devstack.local_kafka`) and the local
stack's services (`devstack.stack`) are started, found and stopped the same way."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path


def live_pid(pid_file: Path, *, command_marker: str | None = None) -> int | None:
    """The pid in `pid_file` if that process is alive, else None.

    Our own exited child is reaped first (a zombie would otherwise look alive forever). With
    `command_marker`, a pid whose command line does not contain it counts as dead: the pid was reused
    by another program after ours exited."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return None
    except ChildProcessError:
        pass  # not our child (started by another process): probe it below
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    if command_marker is not None and command_marker.encode() not in cmdline:
        return None
    return pid


def signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the process group led by `pid` (our services run in their own session)."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def wait_until(check: Callable[[], bool], timeout_s: float, interval: float = 0.2) -> bool:
    """Poll `check` until it is true or `timeout_s` passes; the last answer."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()


def stop_group(pid: int, is_alive: Callable[[], bool], *, timeout_s: float, kill: bool = False) -> None:
    """SIGTERM (or SIGKILL with `kill`) the group, then SIGKILL it if still alive after `timeout_s`."""
    signal_group(pid, signal.SIGKILL if kill else signal.SIGTERM)
    if not wait_until(lambda: not is_alive(), timeout_s):
        signal_group(pid, signal.SIGKILL)
        wait_until(lambda: not is_alive(), 10.0, interval=0.1)


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
