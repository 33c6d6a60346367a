"""`--profile`: where the time goes in a contender that missed its goal.

Processes under test are sampled with py-spy (`--gil`: only the thread holding the GIL, i.e. Python work,
not idle waits); in-process code (the SDK) with cProfile. Summaries land in `{--out-dir}/profiles/`.
"""

from __future__ import annotations

import collections
import cProfile
import io
import pstats
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def py_spy() -> str | None:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return found if Path(found).exists() else None


def spy(pid: int, seconds: float, out: Path) -> subprocess.Popen | None:
    """Start sampling `pid` for `seconds` into `out` (raw stacks); None when py-spy is missing."""
    exe = py_spy()
    if exe is None:
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        exe,
        "record",
        "-p",
        str(pid),
        "-d",
        str(int(seconds)),
        "-r",
        "200",
        "--gil",
        "-f",
        "raw",
        "-o",
        str(out),
    ]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def finish(proc: subprocess.Popen | None, raw: Path, top: int = 30) -> Path | None:
    """Wait for a `spy` run and write `{raw}.txt`: the hottest frames, inclusive and self."""
    if proc is None:
        return None
    proc.wait(120)
    if not raw.exists():
        return None
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = stack.split(";")[1:]  # the first entry names the thread
        total += count
        for frame in set(frames):
            inclusive[frame] += count
        if frames:
            own[frames[-1]] += count
    lines = [f"py-spy --gil samples: {total} (200 Hz)", "", "inclusive:"]
    lines += [f"{100 * n / total:5.1f}% {f}" for f, n in inclusive.most_common(top)]
    lines += ["", "self:"]
    lines += [f"{100 * n / total:5.1f}% {f}" for f, n in own.most_common(top)]
    out = raw.with_suffix(".txt")
    out.write_text("\n".join(lines) + "\n")
    raw.unlink()
    return out


def cprofiled(out: Path, fn: Callable[[], T], top: int = 30) -> T:
    """Run `fn` under cProfile and write the summary to `out` (sorted by cumulative time)."""
    profiler = cProfile.Profile()
    result = profiler.runcall(fn)
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).strip_dirs().sort_stats("cumulative").print_stats(top)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text.getvalue())
    return result
