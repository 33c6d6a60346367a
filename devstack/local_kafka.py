"""Run a real Apache Kafka broker (KRaft, one combined broker+controller node) from Maven jars.

No Docker: `dev/kafka/pom.xml` resolves `org.apache.kafka:kafka_2.13` into `.cache/kafka/libs`, the
storage is formatted with `kafka.tools.StorageTool`, and `kafka.Kafka` runs on 127.0.0.1 with logs and
data under `.run/kafka` (both folders git-ignored).

    refinery-kafka start     # idempotent; reuses a broker already reachable at the bootstrap address
    refinery-kafka stop
    refinery-kafka status
    refinery-kafka start --brokers 3   # a 3-node cluster instead (`devstack.local_cluster`)

The pytest session fixture (`tests/conftest.py`) uses `LocalKafka` too.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from common.config import KafkaSettings, LocalKafkaSettings
from common.errors import RefineryError
from devstack.processes import live_pid, log_tail, stop_group, wait_until

log = logging.getLogger(__name__)

READY_TOPIC = "_refinery_ready"
_LOG4J2 = """Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.request.logger
        level: WARN
      - name: state.change.logger
        level: WARN
"""


class LocalKafkaError(RefineryError):
    """The local broker could not be fetched, formatted or started; the message says what to fix."""


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def broker_ready(bootstrap: str, client_config: dict | None = None, timeout: float = 5.0) -> bool:
    """True when a client can talk to the cluster and create (or find) a topic."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    conf = dict(client_config or {})
    conf["bootstrap.servers"] = bootstrap
    admin = AdminClient(conf)
    try:
        futures = admin.create_topics([NewTopic(READY_TOPIC, 1, 1)], operation_timeout=timeout)
        futures[READY_TOPIC].result(timeout=timeout)
    except KafkaException as exc:
        err = exc.args[0]
        return bool(getattr(err, "code", lambda: None)() == _topic_exists_code())
    except Exception:  # noqa: BLE001 - any other failure (timeout, transport) means "not ready yet"
        return False
    return True


def _topic_exists_code() -> int:
    from confluent_kafka import KafkaError

    return KafkaError.TOPIC_ALREADY_EXISTS


@dataclass
class LocalKafka:
    """One local broker: its port, its folder, and the process running it."""

    port: int = 9092
    host: str = "127.0.0.1"
    home: Path = field(default_factory=lambda: LocalKafkaSettings().home)
    settings: LocalKafkaSettings = field(default_factory=LocalKafkaSettings)
    extra_properties: dict[str, str] = field(default_factory=dict)
    listeners: dict[str, tuple[int, str]] = field(default_factory=dict)
    """Extra listeners: name -> (port, security protocol), e.g. {"SASL": (9094, "SASL_PLAINTEXT")}."""
    jvm_options: list[str] = field(default_factory=list)
    node_id: int = 1
    quorum_voters: str | None = None
    """`controller.quorum.voters`; default: this node alone. A cluster (`devstack.local_cluster`) names
    every node and gives them one `cluster_id`."""
    cluster_id: str | None = None

    @classmethod
    def from_settings(
        cls, kafka: KafkaSettings | None = None, local: LocalKafkaSettings | None = None
    ) -> LocalKafka:
        kafka = kafka or KafkaSettings()
        local = local or LocalKafkaSettings()
        host, port = kafka.first_host_port
        return cls(port=port, host=host, home=local.home, settings=local)

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def controller_port(self) -> int:
        return self.settings.controller_port or self.port + 1

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def pid_file(self) -> Path:
        return self.home / "kafka.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "kafka.log"

    # --- jars ---------------------------------------------------------------------------------------
    def ensure_jars(self) -> Path:
        libs = self.settings.libs_dir
        if any(libs.glob("kafka_2.13-*.jar")):
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise LocalKafkaError("Maven (mvn) is not on PATH; install Maven 3.8+ to fetch the Kafka jars")
        log.info("fetching Kafka jars with Maven", extra={"pom": str(self.settings.pom)})
        proc = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(self.settings.pom),
                "dependency:copy-dependencies",
                f"-Dkafka.libs.dir={libs}",
            ],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0 or not any(libs.glob("kafka_2.13-*.jar")):
            raise LocalKafkaError(
                f"Maven could not fetch the Kafka jars (exit {proc.returncode}):\n{proc.stdout[-2000:]}"
                f"{proc.stderr[-2000:]}"
            )
        return libs

    # --- configuration ------------------------------------------------------------------------------
    def server_properties(self) -> dict[str, str]:
        listener_names = ["PLAINTEXT", "CONTROLLER", *self.listeners]
        listeners = [
            f"PLAINTEXT://{self.host}:{self.port}",
            f"CONTROLLER://{self.host}:{self.controller_port}",
        ]
        advertised = [f"PLAINTEXT://{self.host}:{self.port}"]
        protocols = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"]
        for name, (port, protocol) in self.listeners.items():
            listeners.append(f"{name}://{self.host}:{port}")
            advertised.append(f"{name}://{self.host}:{port}")
            protocols.append(f"{name}:{protocol}")
        assert len(listener_names) == len(listeners)
        props = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": self.quorum_voters
            or f"{self.node_id}@{self.host}:{self.controller_port}",
            "listeners": ",".join(listeners),
            "advertised.listeners": ",".join(advertised),
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": ",".join(protocols),
            "log.dirs": str(self.data_dir),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "10",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            "message.max.bytes": "10485760",
            "log.retention.hours": "24",
            "log.segment.bytes": "268435456",
        }
        props.update(self.extra_properties)
        return props

    def _write_config(self) -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        path = self.home / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in self.server_properties().items()))
        (self.home / "log4j2.yaml").write_text(_LOG4J2)
        return path

    def _java(self) -> str:
        java_home = os.environ.get("JAVA_HOME")
        java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
        if not java:
            raise LocalKafkaError("no Java found: install JDK 17+ or set JAVA_HOME")
        return java

    def _format_storage(self, config: Path, libs: Path) -> None:
        if (self.data_dir / "meta.properties").exists():
            return
        cluster_id = self.cluster_id or self._cluster_id()
        proc = subprocess.run(
            [
                self._java(),
                "-cp",
                f"{libs}/*",
                "kafka.tools.StorageTool",
                "format",
                # one argument: a URL-safe base64 id can begin with "-", which argparse would
                # take for an option ("argument --cluster-id/-t: expected one argument")
                f"--cluster-id={cluster_id}",
                "-c",
                str(config),
                "--ignore-formatted",
            ],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise LocalKafkaError(f"formatting Kafka storage failed:\n{proc.stdout}{proc.stderr}")

    @staticmethod
    def _cluster_id() -> str:
        import base64

        return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")

    # --- lifecycle ----------------------------------------------------------------------------------
    def pid(self) -> int | None:
        return live_pid(self.pid_file, command_marker="kafka.Kafka")

    def is_running(self) -> bool:
        return port_open(self.host, self.port)

    def start(self, *, wait: bool = True) -> str:
        """Start the broker unless one already answers; return "reused" or "started"."""
        if self.is_running() and broker_ready(self.bootstrap, timeout=5):
            return "reused"
        if self.pid() is None:
            libs = self.ensure_jars()
            config = self._write_config()
            self._format_storage(config, libs)
            # the JVM's own scratch files (lz4-java extracts its native library there, and a SIGKILLed
            # broker never deletes it) stay under the broker's directory, emptied at each start
            scratch = self.home / "tmp"
            shutil.rmtree(scratch, ignore_errors=True)
            scratch.mkdir(parents=True)
            cmd = [
                self._java(), f"-Xmx{self.settings.heap}", f"-Xms{self.settings.heap}",
                "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true",
                f"-Djava.io.tmpdir={scratch}",
                f"-Dlog4j2.configurationFile={self.home / 'log4j2.yaml'}",
                *self.jvm_options,
                "-cp", f"{libs}/*", "kafka.Kafka", str(config),
            ]  # fmt: skip
            with open(self.log_file, "ab") as out:
                proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            self.pid_file.write_text(str(proc.pid))
            # Until the child has exec'd java, /proc shows our command line and pid() would say "dead".
            wait_until(lambda: self.pid() is not None or proc.poll() is not None, 5.0, interval=0.02)
        if wait:
            self.wait_ready()
        return "started"

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.settings.start_timeout_s
        while time.monotonic() < deadline:
            if self.pid() is None and not self.is_running():
                raise LocalKafkaError(
                    f"Kafka exited during start-up; see {self.log_file}:\n{log_tail(self.log_file)}"
                )
            if self.is_running() and broker_ready(self.bootstrap, timeout=5):
                return
            time.sleep(0.5)
        raise LocalKafkaError(
            f"Kafka did not become ready on {self.bootstrap} within {self.settings.start_timeout_s:.0f}s; "
            f"see {self.log_file}:\n{log_tail(self.log_file)}"
        )

    def stop(self, *, timeout: float = 30.0, kill: bool = False) -> bool:
        """Stop the broker we started (SIGTERM, SIGKILL after `timeout`); False if none was running."""
        pid = self.pid()
        if pid is None:
            return False
        stop_group(pid, lambda: self.pid() is not None, timeout_s=timeout, kill=kill)
        self.pid_file.unlink(missing_ok=True)
        while port_open(self.host, self.port, timeout=0.2):
            time.sleep(0.1)
        return True

    def wipe(self) -> None:
        """Stop and delete all data (for throwaway brokers in tests)."""
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    from common.logs import configure_logging

    parser = argparse.ArgumentParser(prog="refinery-kafka", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["start", "stop", "status", "fetch"])
    parser.add_argument(
        "--bootstrap", help="host:port to listen on (default REFINERY_KAFKA_BOOTSTRAP_SERVERS)"
    )
    parser.add_argument(
        "--brokers", type=int, default=1, choices=range(1, 10), metavar="N",
        help="N > 1: a local KRaft cluster of N combined nodes, brokers on PORT..PORT+N-1 and controllers "
        "on the N ports after them, data and logs in .run/kafka-cluster/node-<id> (replication 3, "
        "min.insync.replicas 2 by default; see docs/scaling.md)",
    )  # fmt: skip
    parser.add_argument("--heap", help="JVM heap of each node (default: 1g alone, 256m in a cluster)")
    args = parser.parse_args(argv)
    configure_logging()
    kafka_settings = KafkaSettings(bootstrap_servers=args.bootstrap) if args.bootstrap else KafkaSettings()
    if args.brokers > 1:
        return _cluster_command(args, kafka_settings)
    local = LocalKafkaSettings(heap=args.heap) if args.heap else LocalKafkaSettings()
    broker = LocalKafka.from_settings(kafka_settings, local)
    try:
        if args.command == "fetch":
            print(f"Kafka jars in {broker.ensure_jars()}")
        elif args.command == "start":
            outcome = broker.start()
            print(f"Kafka {outcome} on {broker.bootstrap} (logs: {broker.log_file})")
        elif args.command == "stop":
            print("Kafka stopped" if broker.stop() else "no local Kafka was running (nothing to stop)")
        else:
            running = broker.is_running()
            print(f"Kafka on {broker.bootstrap}: {'up' if running else 'down'} (pid {broker.pid()})")
            return 0 if running else 1
    except LocalKafkaError as exc:
        print(f"refinery-kafka: {exc}", file=sys.stderr)
        return 2
    return 0


def _cluster_command(args: argparse.Namespace, kafka_settings: KafkaSettings) -> int:
    from devstack.local_cluster import LocalKafkaCluster

    local = LocalKafkaSettings()
    host, port = kafka_settings.first_host_port
    options = {"heap": args.heap} if args.heap else {}
    cluster = LocalKafkaCluster.on_ports(
        port, args.brokers, home=local.home.parent / "kafka-cluster", host=host, settings=local, **options
    )
    try:
        if args.command == "fetch":
            print(f"Kafka jars in {cluster.nodes[1].ensure_jars()}")
        elif args.command == "start":
            started = time.monotonic()
            outcome = cluster.start()
            print(f"Kafka cluster of {cluster.size} {outcome} in {time.monotonic() - started:.0f} s "
                  f"(logs: {cluster.home}/node-*/kafka.log)\n"
                  f"export REFINERY_KAFKA_BOOTSTRAP_SERVERS={cluster.bootstrap}")  # fmt: skip
        elif args.command == "stop":
            stopped = cluster.stop()
            print(
                "Kafka cluster stopped" if stopped else "no local Kafka cluster was running (nothing to stop)"
            )
        else:
            running = cluster.running()
            rss = cluster.rss_mb()
            for node_id, node in cluster.nodes.items():
                state = f"up, {rss.get(node_id, 0):.0f} MiB" if node_id in running else "down"
                print(f"node {node_id} on {node.bootstrap} (controller :{node.controller_port}): {state}")
            print(f"active controller: {cluster.active_controller()}")
            cluster.close_clients()
            return 0 if len(running) == cluster.size else 1
    except LocalKafkaError as exc:
        print(f"refinery-kafka: {exc}", file=sys.stderr)
        return 2
    finally:
        cluster.close_clients()
    return 0


if __name__ == "__main__":
    sys.exit(main())
