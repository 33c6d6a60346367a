"""The whole pipeline on this machine without Docker: the same services as `docker-compose.yml`, each a
background process with a pid file and a log under `.run/stack/`.

    refinery-stack up       # Kafka, registry, routes, workers, catalog, demo producer, gateway (idempotent)
    refinery-stack status
    refinery-stack down     # stops them all, Kafka too (unless --keep-kafka)

Ports and counts come from `common/config.py` (REFINERY_REGISTRY_PORT, REFINERY_WORKER_WEB_PORT,
REFINERY_CATALOG_PORT, REFINERY_STACK_DEMO_METRICS_PORT, REFINERY_STACK_WORKERS, ...), so a second stack
can run beside the first.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from common.config import (
    CatalogSettings,
    GatewaySettings,
    KafkaSettings,
    RegistrySettings,
    StackSettings,
    WorkerSettings,
)
from common.errors import RefineryError
from devstack.local_kafka import LocalKafka, LocalKafkaError
from devstack.processes import live_pid, log_tail, stop_group, wait_until

NO_URL_GRACE_S = 3.0


class StackError(RefineryError):
    """A service of the local stack did not start (the message names it and quotes its log)."""


@dataclass(frozen=True)
class Service:
    """One process of the stack. `ready_url` answers 2xx once it serves; `one_shot` runs to completion."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    ready_url: str | None = None
    one_shot: bool = False
    links: dict[str, str] = field(default_factory=dict)  # what to open, for the summary


def _script(name: str) -> str:
    """A console script of this installation (next to the running interpreter), else from PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else name


@dataclass
class StackPlan:
    """Which services to run and how, derived from the settings alone (no side effects)."""

    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    registry: RegistrySettings = field(default_factory=RegistrySettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    catalog: CatalogSettings = field(default_factory=CatalogSettings)
    gateway: GatewaySettings = field(default_factory=GatewaySettings)
    stack: StackSettings = field(default_factory=StackSettings)

    @property
    def registry_url(self) -> str:
        return f"http://{self.registry.host}:{self.registry.port}"

    def worker_url(self, index: int) -> str:
        return f"http://{self.worker.web_host}:{self.worker.web_port + index}"

    @property
    def catalog_url(self) -> str:
        return f"http://{self.catalog.host}:{self.catalog.port}"

    @property
    def gateway_url(self) -> str:
        return f"http://{self.gateway.host}:{self.gateway.port}"

    @property
    def gateway_key_file(self) -> Path:
        """The local stack's demo API key (a dev key for title 1234), made once and kept while valid."""
        return self.stack.run_dir / "gateway" / "demo.key"

    @property
    def demo_metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.stack.demo_metrics_port}/metrics"

    def common_env(self) -> dict[str, str]:
        """Where every service finds Kafka and the registry (with the registry's credentials, if set)."""
        env = {
            "REFINERY_KAFKA_BOOTSTRAP_SERVERS": self.kafka.bootstrap_servers,
            "REFINERY_REGISTRY_URL": self.registry_url,
        }
        if self.registry.username:
            env["REFINERY_REGISTRY_USERNAME"] = self.registry.username
        if self.registry.password is not None:
            env["REFINERY_REGISTRY_PASSWORD"] = self.registry.password.get_secret_value()
        return env

    def services(self) -> list[Service]:
        env = self.common_env()
        workers = [
            Service(
                name=f"worker-{i}",
                # restarted when its watchdog ends it with code 70, as compose's restart policy does
                argv=[_script("refinery-supervise"), "--", _script("refinery"), "worker"],
                env={
                    **env,
                    # every record's schema id is checked (unknown ids: `unknown_schema` dead letters)
                    "REFINERY_WORKER_REGISTRY_CHECK": "true",
                    "REFINERY_WORKER_WEB_PORT": str(self.worker.web_port + i),
                    "REFINERY_WORKER_INSTANCE_ID": f"stack-worker-{i}",
                },
                ready_url=f"{self.worker_url(i)}/health",  # alive; /ready also needs partitions
                links={
                    "ready": f"{self.worker_url(i)}/ready",
                    "routes": f"{self.worker_url(i)}/routes",
                    "stats": f"{self.worker_url(i)}/stats",
                    "metrics": f"{self.worker_url(i)}/metrics",
                },
            )
            for i in range(self.stack.workers)
        ]
        worker_urls = ",".join(self.worker_url(i) for i in range(self.stack.workers))
        return [
            Service(
                name="registry",
                argv=[
                    _script("refinery-registry"),
                    "--host",
                    self.registry.host,
                    "--port",
                    str(self.registry.port),
                    "--topic",
                    self.registry.topic,
                ],
                env=env,
                ready_url=f"{self.registry_url}/subjects",
                links={"api": f"{self.registry_url}/subjects", "metrics": f"{self.registry_url}/metrics"},
            ),
            Service(
                name="routes",
                argv=[_script("refinery"), "routes", "apply", str(self.stack.routes_file)],
                env=env,
                one_shot=True,
            ),
            *workers,
            Service(
                name="catalog",
                argv=[_script("refinery-catalog")],
                env={**env, "REFINERY_CATALOG_WORKER_URLS": worker_urls},
                ready_url=f"{self.catalog_url}/catalog",
                links={"page": f"{self.catalog_url}/catalog/ui", "json": f"{self.catalog_url}/catalog"},
            ),
            Service(
                name="demo",
                argv=[_script("refinery-demo"), "--register", "--rate", f"{self.stack.demo_rate:g}"],
                env={**env, "REFINERY_PRODUCER_METRICS_PORT": str(self.stack.demo_metrics_port)},
                links={"metrics": self.demo_metrics_url},
            ),
            Service(
                name="gateway-key",
                argv=[
                    _script("refinery-gateway"),
                    "keys",
                    "create",
                    "--env",
                    "dev",
                    "--title",
                    "1234",
                    "--source",
                    "telemetry",
                    "--name",
                    "local stack demo",
                    "--save",
                    str(self.gateway_key_file),
                    "--reuse",
                ],
                env=env,
                one_shot=True,
            ),
            Service(
                name="gateway",
                argv=[
                    _script("refinery-gateway"),
                    "serve",
                    "--host",
                    self.gateway.host,
                    "--port",
                    str(self.gateway.port),
                ],
                env=env,
                ready_url=f"{self.gateway_url}/ready",
                links={
                    "docs": f"{self.gateway_url}/docs",
                    "events": f"{self.gateway_url}/v1/events",
                    "metrics": f"{self.gateway_url}/metrics",
                },
            ),
        ]

    def gateway_curl(self) -> str:
        """A curl command that sends one event through the local gateway with the demo key."""
        event = (
            '[{"category":"session_heartbeat","version":1,"attributes":{"platform":"pc"},'
            '"payload":{"session_id":"s-1","player_id":"p-1","sent_at_ms":1764496800000,"latency_ms":31.5}}]'
        )
        auth = f'-H "Authorization: Bearer $(cat {self.gateway_key_file})"'
        return (
            f"curl -sS {self.gateway_url}/v1/events {auth} -H 'Content-Type: application/json' -d '{event}'"
        )


class ServiceProcess:
    """The pid file and log of one service, and the process they describe."""

    def __init__(self, service: Service, run_dir: Path) -> None:
        self.service = service
        self.dir = run_dir / service.name
        self.pid_file = run_dir / f"{service.name}.pid"
        self.log_file = run_dir / f"{service.name}.log"

    def pid(self) -> int | None:
        """The live process's id, or None (a stale pid file, or a pid now reused by another program)."""
        return live_pid(self.pid_file, command_marker=Path(self.service.argv[0]).name)

    def _open_log(self) -> BinaryIO:
        self.dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_file, "ab")  # closed by the caller (a `with` block)
        log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(self.service.argv)}\n".encode())
        log.flush()
        return log

    def _child_options(self, log: BinaryIO) -> dict[str, Any]:
        return {
            "cwd": self.dir,  # each process gets its own folder (Faust keeps local state in its cwd)
            "env": {**os.environ, **self.service.env},
            "stdin": subprocess.DEVNULL,
            "stdout": log,
            "stderr": subprocess.STDOUT,
        }

    def start(self) -> int:
        """Start the service in the background, in its own session (so `stop` can signal its group)."""
        with self._open_log() as log:
            proc = subprocess.Popen(self.service.argv, start_new_session=True, **self._child_options(log))
        self.pid_file.write_text(str(proc.pid))
        # Until the child has exec'd, /proc shows our own command line and `pid()` would say "not running".
        wait_until(lambda: self.pid() is not None or proc.poll() is not None, 5.0, interval=0.02)
        return proc.pid

    def run_to_completion(self, timeout_s: float) -> int:
        """Run a one-shot service in the foreground (output to its log); its exit code, -1 on timeout."""
        with self._open_log() as log:
            try:
                done = subprocess.run(self.service.argv, timeout=timeout_s, **self._child_options(log))
            except subprocess.TimeoutExpired:
                return -1
        return done.returncode

    def stop(self, timeout_s: float = 15.0) -> bool:
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        stop_group(pid, lambda: self.pid() is not None, timeout_s=timeout_s)
        self.pid_file.unlink(missing_ok=True)
        return True

    def log_tail(self, lines: int = 25) -> str:
        return log_tail(self.log_file, lines)


def http_ok(url: str, timeout_s: float = 2.0) -> bool:
    try:
        return httpx.get(url, timeout=timeout_s).is_success
    except httpx.HTTPError:
        return False


class Stack:
    """Start, stop and report the local stack described by a `StackPlan`."""

    def __init__(self, plan: StackPlan | None = None) -> None:
        self.plan = plan or StackPlan()
        self.run_dir = self.plan.stack.run_dir
        self.broker = LocalKafka.from_settings(self.plan.kafka)

    def processes(self) -> list[ServiceProcess]:
        return [ServiceProcess(s, self.run_dir) for s in self.plan.services()]

    def up(self, echo: Callable[[str], None] = print) -> None:
        """Start whatever is not running yet; services already up are left alone."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            echo(f"kafka      {self.broker.start()} on {self.broker.bootstrap}")
        except LocalKafkaError as exc:
            raise StackError(f"kafka did not start: {exc}") from exc
        for proc in self.processes():
            if proc.service.one_shot:
                self._run_once(proc)
                echo(f"{proc.service.name:<10} applied")
                continue
            pid = proc.pid()
            outcome = "already running" if pid else "started"
            pid = pid or proc.start()
            self._wait_ready(proc)
            echo(f"{proc.service.name:<10} {outcome} (pid {pid}, log {proc.log_file})")

    def _run_once(self, proc: ServiceProcess) -> None:
        code = proc.run_to_completion(self.plan.stack.start_timeout_s)
        if code != 0:
            raise StackError(
                f"{proc.service.name} failed (exit {code}); see {proc.log_file}:\n{proc.log_tail()}"
            )

    def _wait_ready(self, proc: ServiceProcess) -> None:
        url = proc.service.ready_url
        started = time.monotonic()

        def ready() -> bool:
            if proc.pid() is None:
                raise StackError(
                    f"{proc.service.name} exited during start-up; see {proc.log_file}:\n{proc.log_tail()}"
                )
            if url is None:  # nothing to ask: running for a few seconds without exiting counts as up
                return time.monotonic() - started > NO_URL_GRACE_S
            return http_ok(url)

        if not wait_until(ready, self.plan.stack.start_timeout_s, interval=0.3):
            raise StackError(
                f"{proc.service.name} did not answer {url} within {self.plan.stack.start_timeout_s:.0f}s; "
                f"see {proc.log_file}:\n{proc.log_tail()}"
            )

    def down(self, *, keep_kafka: bool = False, echo: Callable[[str], None] = print) -> None:
        for proc in reversed(self.processes()):
            if proc.stop():
                echo(f"{proc.service.name:<10} stopped")
        if not keep_kafka:
            stopped = self.broker.stop()
            echo("kafka      stopped" if stopped else "kafka      not started by us (left running)")

    def status(self) -> dict[str, bool]:
        """Service name -> answering (running, and its ready URL responds)."""
        report = {"kafka": self.broker.is_running()}
        for proc in self.processes():
            if proc.service.one_shot:
                continue
            url = proc.service.ready_url
            report[proc.service.name] = proc.pid() is not None and (url is None or http_ok(url))
        return report

    def where_to_look(self) -> str:
        lines = ["", "Refinery is running. Where to look:"]
        for proc in self.processes():
            for label, url in proc.service.links.items():
                lines.append(f"  {proc.service.name + ' ' + label:<20} {url}")
        lines += [
            f"  {'logs':<20} {self.run_dir}/<service>.log",
            "",
            "Read a derived topic (records routed by the workload route set):",
            f"  REFINERY_KAFKA_BOOTSTRAP_SERVERS={self.plan.kafka.bootstrap_servers} "
            f"REFINERY_REGISTRY_URL={self.plan.registry_url} \\",
            "    .venv/bin/refinery-client tail prod.telemetry.1234.player_killed-v2",
            "",
            f"Send events over HTTP (gateway {self.plan.gateway_url}; the demo key sends as dev, title 1234,",
            "so this lands in dev.all.all.all-v1; more keys: .venv/bin/refinery-gateway keys create --help):",
            f"  {self.plan.gateway_curl()}",
            "Stop everything: bash scripts/stop.sh",
        ]
        return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from common.logs import configure_logging

    parser = argparse.ArgumentParser(prog="refinery-stack", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--keep-kafka", action="store_true", help="down: leave the broker running")
    args = parser.parse_args(argv)
    configure_logging()
    stack = Stack()
    try:
        if args.command == "up":
            stack.up()
            print(stack.where_to_look())
        elif args.command == "down":
            stack.down(keep_kafka=args.keep_kafka)
        else:
            report = stack.status()
            for name, ok in report.items():
                print(f"{name:<10} {'up' if ok else 'down'}")
            return 0 if all(report.values()) else 1
    except StackError as exc:
        print(f"refinery-stack: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
