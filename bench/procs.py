"""Subprocesses under test (workers, Faust, servers): start, watch memory, stop; and output watching."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bench.context import BenchContext
from common.config import REPO_ROOT


@dataclass
class Child:
    """A process the harness started (in its own session, so stopping it stops its children too)."""

    name: str
    proc: subprocess.Popen
    log_path: Path
    scratch: list[Path] = field(default_factory=list)  # removed by stop()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 20.0) -> None:
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        for path in self.scratch:
            shutil.rmtree(path, ignore_errors=True)
        self.log_path.unlink(missing_ok=True)  # failures quote its tail before stopping


def start(name: str, args: list[str], env: Mapping[str, str] | None = None) -> Child:
    """Run `python args...` from the repo root with extra environment variables; log to a temp file."""
    log_path = Path(tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".log")[1])
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, *args],
            cwd=REPO_ROOT,
            env={**os.environ, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Child(name, proc, log_path)


def rss_bytes(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS) of a process from /proc, in bytes; (0, 0) if it is gone."""
    values = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) * 1024
    except OSError:
        return 0, 0
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) from /proc; 0.0 if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "; utime, stime are fields 14, 15
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_pids(pid: int) -> list[int]:
    """`pid` and every live descendant (e.g. uvicorn's worker processes), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(parents.get(current, ()))
    return found


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of `pid` and its live descendants (a server with worker processes), from /proc."""
    return sum(cpu_seconds(p) for p in tree_pids(pid))


class MachineCpu:
    """How busy all CPUs were since this object was made (from /proc/stat)."""

    def __init__(self) -> None:
        self._total, self._idle = self._read()

    @staticmethod
    def _read() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(values), values[3] + values[4]  # idle + iowait

    def busy_pct(self) -> float:
        total, idle = self._read()
        elapsed = total - self._total
        return 100.0 * (1 - (idle - self._idle) / elapsed) if elapsed > 0 else 0.0


@dataclass
class SinkProgress:
    records: int
    seconds: float
    cpu_s: float | None = None  # CPU time the process under test used over the same span

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_us_per_record(self) -> float | None:
        """CPU cost per record: steadier than the rate on a shared machine (others' load changes the
        wall time far more than the CPU a process needs per record)."""
        if self.cpu_s is None or not self.records:
            return None
        return self.cpu_s / self.records * 1e6


def watch_output(
    ctx: BenchContext,
    topics: list[str],
    target: int,
    *,
    timeout: float,
    child: Child | None = None,
    interval: float = 0.1,
) -> SinkProgress:
    """Wait until `target` more records landed in `topics`; time from the first new record seen to the
    last, so process start-up and group joins are excluded for every contender alike."""
    base = sum(ctx.end_offsets(topics).values())
    first_at = 0.0
    first_count = 0
    deadline = time.monotonic() + timeout
    done = 0
    while time.monotonic() < deadline:
        done = sum(ctx.end_offsets(topics).values()) - base
        now = time.monotonic()
        if done and not first_at:
            first_at, first_count = now, done
        if done >= target:
            return SinkProgress(done - first_count, now - first_at)
        if child is not None and not child.alive():
            raise RuntimeError(f"{child.name} exited early:\n{child.log_tail()}")
        time.sleep(interval)
    raise RuntimeError(f"only {done} of {target} records arrived in {timeout:.0f}s")


def stop_on_sigterm() -> threading.Event:
    """An event set when this process gets SIGTERM (how the harness stops the processes it starts)."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    return stop


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
