"""Headless Chromium for page tests: Debian's /usr/bin/chromium (never a browser a tool downloads), a
fresh empty profile per page and the flags that keep it off the network (without them it keeps trying
Google's hosts on this machine's closed network).

A missing chromium skips the test with the reason, except in CI (CI=true), where it fails it: the same
rule as tests/sdk_cpp (`scripts/setup.sh` installs chromium as root).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import pytest

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_or_skip(needs: str) -> str:
    """The chromium binary; `needs` says which test needs it, for the skip or failure message."""
    found = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    if found is None:
        hint = "Debian's chromium is missing (scripts/setup.sh installs it as root: apt-get install chromium)"
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(f"chromium missing in CI: {hint}")
        pytest.skip(f"{needs} needs a browser: {hint}")
    return found


def dump_dom(chromium: str, url: str, *, budget_ms: int = 20_000) -> str:
    """The page's DOM once its scripts ran (at most `budget_ms` of virtual time)."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        done = subprocess.run(
            [chromium, *CHROMIUM_FLAGS, f"--virtual-time-budget={budget_ms}", f"--user-data-dir={profile}",
             "--dump-dom", url],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout
