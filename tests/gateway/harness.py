"""Run `refinery-gateway serve` as a real subprocess against the session's broker and registry, and make
API keys for it (written to its keys topic, as `refinery-gateway keys create` does)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx

from gateway.keys import KeyScope, ensure_keys_topic, new_key, publish_key
from tests.support import free_port, wait_for

GATEWAY = Path(sys.executable).parent / "refinery-gateway"


def gateway_env(bootstrap: str, registry_url: str, keys_topic: str, **settings: Any) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("REFINERY_GATEWAY_", "REFINERY_PRODUCER_"))
    }
    env.update(
        {
            "REFINERY_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "REFINERY_REGISTRY_URL": registry_url,
            "REFINERY_LOG_FORMAT": "json",
            "REFINERY_GATEWAY_KEYS_TOPIC": keys_topic,
            "REFINERY_PRODUCER_PARTITIONS": "3",
        }
    )
    env.update({f"REFINERY_GATEWAY_{k.upper()}": str(v) for k, v in settings.items()})
    return env


class GatewayProcess:
    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = dict(env)
        self.port = free_port()
        self.env["REFINERY_GATEWAY_PORT"] = str(self.port)
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def bootstrap(self) -> str:
        return self.env["REFINERY_KAFKA_BOOTSTRAP_SERVERS"]

    @property
    def keys_topic(self) -> str:
        return self.env["REFINERY_GATEWAY_KEYS_TOPIC"]

    def start(self, *, ready: bool = True) -> GatewayProcess:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [str(GATEWAY), "serve"], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        path = "/ready" if ready else "/health"
        wait_for(
            lambda: self._answers(path), timeout=60, what=f"gateway {path} on {self.url} ({self.log_path})"
        )
        return self

    def _answers(self, path: str) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(
                f"gateway exited with {self.proc.returncode}: {self.log_path.read_text()[-3000:]}"
            )
        try:
            return httpx.get(self.url + path, timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def make_key(
        self,
        env: str,
        title: str,
        sources: tuple[str, ...],
        categories: tuple[str, ...] | None = None,
        rate: float | None = None,
    ) -> str:
        """A new key, written to the keys topic; returns once this gateway accepts it."""
        token, key = new_key(KeyScope(env, title, sources, categories), rate=rate, name="tests")
        conf = {"bootstrap.servers": self.bootstrap}
        ensure_keys_topic(conf, self.keys_topic)
        publish_key(conf, self.keys_topic, key)
        wait_for(lambda: self.post(token, b"x").status_code != 401, timeout=15, what=f"key {key.id} known")
        return token

    def post(
        self,
        token: str | None,
        body: bytes,
        content_type: str = "application/json",
        *,
        headers: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> httpx.Response:
        sent = {"Content-Type": content_type, **(headers or {})}
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        return httpx.post(self.url + "/v1/events", content=body, headers=sent, timeout=timeout)


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"
