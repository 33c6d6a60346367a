"""Start and stop real registry processes (`python -m schema_registry`) for tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]


class RegistryProcess:
    """One registry subprocess on a free port; its log goes to `log_path` (or is discarded)."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        port: int | None = None,
        log_path: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.extra_env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout: float = 60.0) -> RegistryProcess:
        env = {
            **os.environ,
            "REFINERY_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "REFINERY_REGISTRY_LEADER_SESSION_TIMEOUT_MS": "6000",
            "REFINERY_LOG_FORMAT": "text",
            **self.extra_env,
        }
        cmd = [sys.executable, "-m", "schema_registry", "--port", str(self.port), "--topic", self.topic]
        out: Any = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(cmd, env=env, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT)
        finally:
            if self.log_path:
                out.close()
        self.wait_ready(timeout=timeout)
        return self

    def wait_ready(self, *, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"registry exited with {self.proc.returncode} (log: {self.log_path})")
            try:
                if httpx.get(f"{self.url}/subjects", timeout=2).status_code in (200, 401):  # 401: auth on
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"registry on {self.url} not ready after {timeout:.0f}s (log: {self.log_path})")

    def kill(self) -> None:
        """kill -9: no clean shutdown, the group only notices when the session times out."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
