"""A local KRaft cluster of several combined broker+controller nodes, from the same Maven jars.

Each node is a `devstack.local_kafka.LocalKafka` with its own ports, data dir and log under
`home/node-<id>`; all are formatted with one cluster id and vote in one static controller quorum. The
cluster is configured the way studios run production: replication factor 3 and `min.insync.replicas=2`
as broker defaults (every topic created without its own setting gets them, including the consumer
offsets and transaction state topics), unclean leader election off, small heaps and few threads so three
nodes fit a 2-core machine.

    refinery-kafka start --brokers 3      # brokers on 9092-9094, controllers on 9095-9097
    refinery-kafka stop --brokers 3

Fault injection for tests: `kill`, `stop_node`/`start_node` (a rolling restart), `pause`/`resume`
(SIGSTOP/SIGCONT: a stalled node), and where to aim them: `active_controller`, `leader_counts`.
"""

from __future__ import annotations

import json
import shutil
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.config import LocalKafkaSettings
from devstack.local_kafka import LocalKafka, LocalKafkaError, port_open
from devstack.processes import log_tail, signal_group, wait_until

READY_TOPIC = "_refinery_cluster_ready"

# Broker defaults for every node: what makes "acknowledged" mean "on two brokers at least".
REPLICATED = {
    "default.replication.factor": "3",
    "min.insync.replicas": "2",
    "offsets.topic.replication.factor": "3",
    "transaction.state.log.replication.factor": "3",
    "transaction.state.log.min.isr": "2",
    "share.coordinator.state.topic.replication.factor": "3",
    "share.coordinator.state.topic.min.isr": "2",
    "unclean.leader.election.enable": "false",
}
# Few threads: three brokers share two cores with the pipeline under test.
SMALL = {
    "num.network.threads": "2",
    "num.io.threads": "2",
    "num.replica.fetchers": "1",
    "background.threads": "2",
    "log.cleaner.threads": "1",
    "num.recovery.threads.per.data.dir": "1",
    "log.segment.bytes": "67108864",
}
# Small JVMs: G1 with one GC thread, C1 only (starts faster; the JIT competes for the same two cores).
JVM_OPTIONS = [
    "-XX:ParallelGCThreads=1",
    "-XX:ConcGCThreads=1",
    "-XX:CICompilerCount=2",
    "-XX:TieredStopAtLevel=1",
    "-XX:ReservedCodeCacheSize=64m",
    "-XX:MaxMetaspaceSize=128m",
    "-Xss512k",
]


@dataclass
class LocalKafkaCluster:
    """`size` nodes (ids 1..size) on `host`; node i listens on `ports[i-1]` and `controller_ports[i-1]`."""

    ports: list[int]
    controller_ports: list[int]
    home: Path
    host: str = "127.0.0.1"
    heap: str = "256m"
    settings: LocalKafkaSettings = field(default_factory=LocalKafkaSettings)
    extra_properties: dict[str, str] = field(default_factory=dict)
    nodes: dict[int, LocalKafka] = field(init=False)
    _clients: dict[str, Any] = field(init=False, default_factory=dict, repr=False)
    _clients_lock: threading.Lock = field(init=False, default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if len(self.ports) != len(self.controller_ports) or not self.ports:
            raise ValueError("one broker port and one controller port per node")
        voters = ",".join(f"{i}@{self.host}:{port}" for i, port in enumerate(self.controller_ports, start=1))
        settings = self.settings.model_copy(update={"heap": self.heap})
        props = {**REPLICATED, **SMALL, **self.extra_properties}
        if self.size < 3:  # a smaller cluster cannot hold three replicas
            props.update({k: str(min(int(v), self.size)) for k, v in REPLICATED.items() if v.isdigit()})
        self.nodes = {
            i: LocalKafka(
                port=port,
                host=self.host,
                home=self.home / f"node-{i}",
                settings=settings.model_copy(update={"controller_port": self.controller_ports[i - 1]}),
                extra_properties=dict(props),
                jvm_options=list(JVM_OPTIONS),
                node_id=i,
                quorum_voters=voters,
            )
            for i, port in enumerate(self.ports, start=1)
        }

    @classmethod
    def on_ports(
        cls, base_port: int, size: int = 3, *, home: Path, host: str = "127.0.0.1", **kwargs: Any
    ) -> LocalKafkaCluster:
        """Brokers on base_port.., controllers right after them (9092-9094 and 9095-9097 for 3)."""
        ports = [base_port + i for i in range(size)]
        controllers = [base_port + size + i for i in range(size)]
        return cls(ports=ports, controller_ports=controllers, home=home, host=host, **kwargs)

    # --- addresses ----------------------------------------------------------------------------------
    @property
    def size(self) -> int:
        return len(self.ports)

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes.values())

    @property
    def client_config(self) -> dict[str, Any]:
        return {"bootstrap.servers": self.bootstrap}

    @property
    def cluster_id_file(self) -> Path:
        return self.home / "cluster.id"

    def _cluster_id(self) -> str:
        """One id for every node, kept so a node wiped alone can be formatted into the same cluster."""
        if self.cluster_id_file.exists():
            return self.cluster_id_file.read_text().strip()
        self.home.mkdir(parents=True, exist_ok=True)
        cluster_id = LocalKafka._cluster_id()
        self.cluster_id_file.write_text(cluster_id)
        return cluster_id

    # --- lifecycle ----------------------------------------------------------------------------------
    def running(self) -> list[int]:
        """Ids of the nodes whose process is alive (a paused node counts)."""
        return [i for i, node in self.nodes.items() if node.pid() is not None]

    def start(self, *, timeout: float | None = None) -> str:
        """Start every node that is not running and wait until all serve; "reused" if all already did."""
        if len(self.running()) == self.size and self.ready(timeout=5):
            return "reused"
        for i, node in self.nodes.items():
            if node.pid() is None and port_open(self.host, node.port):
                raise LocalKafkaError(
                    f"port {node.port} (node {i}) is in use by another process: stop it (a single-node "
                    "broker: refinery-kafka stop) or choose other ports (--bootstrap HOST:PORT)"
                )
        cluster_id = self._cluster_id()
        for node in self.nodes.values():
            node.cluster_id = cluster_id
            if node.pid() is None:
                node.start(wait=False)
        self.wait_ready(timeout=timeout)
        return "started"

    def wait_ready(self, *, timeout: float | None = None) -> None:
        """Every node is registered (unfenced) and a topic replicated on all of them is fully in sync."""
        deadline = time.monotonic() + (timeout or self.settings.start_timeout_s)
        while time.monotonic() < deadline:
            dead = [i for i, node in self.nodes.items() if node.pid() is None]
            if dead:
                node = self.nodes[dead[0]]
                raise LocalKafkaError(
                    f"Kafka node {dead[0]} exited during start-up; see {node.log_file}:\n"
                    f"{log_tail(node.log_file)}"
                )
            if self.ready(timeout=5):
                return
            time.sleep(0.5)
        raise LocalKafkaError(
            f"the Kafka cluster on {self.bootstrap} was not ready within "
            f"{timeout or self.settings.start_timeout_s:.0f}s; logs in {self.home}/node-*/kafka.log"
        )

    def ready(self, timeout: float = 5.0) -> bool:
        """True when all nodes are in the metadata and the ready topic has every node in its ISR."""
        from confluent_kafka.admin import NewTopic

        try:
            metadata = self._metadata_client().list_topics(timeout=timeout)
            if set(metadata.brokers) != set(self.nodes):
                return False
            if READY_TOPIC not in metadata.topics:
                futures = self.admin().create_topics(
                    [NewTopic(READY_TOPIC, 1, self.size)], operation_timeout=timeout
                )
                futures[READY_TOPIC].result(timeout=timeout)
                return False  # look again: its ISR fills in a moment
            return self.under_replicated(topics=[READY_TOPIC], timeout=timeout) == 0
        except Exception:  # noqa: BLE001 - any failure (timeout, transport, exists) means "not yet"
            return False

    def close_clients(self) -> None:
        """Destroy our own clients while the brokers still answer (see `admin`)."""
        with self._clients_lock:
            self._clients.clear()

    def stop(self, *, timeout: float = 30.0) -> bool:
        """Stop every node (SIGTERM, all at once so the quorum does not wait on a node already gone)."""
        self.close_clients()
        pids = {i: node.pid() for i, node in self.nodes.items()}
        for pid in pids.values():
            if pid is not None:
                signal_group(pid, signal.SIGCONT)  # a paused node cannot act on SIGTERM
                signal_group(pid, signal.SIGTERM)
        for i, node in self.nodes.items():
            if pids[i] is not None:
                node.stop(timeout=timeout)
        return any(pid is not None for pid in pids.values())

    def wipe(self) -> None:
        """Stop every node (SIGKILL: the data goes anyway) and delete the cluster's folder."""
        self.close_clients()
        for node in self.nodes.values():
            node.stop(kill=True, timeout=10.0)
        shutil.rmtree(self.home, ignore_errors=True)

    # --- faults -------------------------------------------------------------------------------------
    def kill(self, node_id: int) -> None:
        """SIGKILL one node: no controlled shutdown, its partitions move when the controller fences it."""
        self.nodes[node_id].stop(kill=True)

    def stop_node(self, node_id: int, *, timeout: float = 60.0) -> None:
        """SIGTERM one node: a controlled shutdown (leadership moves away first)."""
        self.nodes[node_id].stop(timeout=timeout)

    def start_node(self, node_id: int, *, timeout: float = 120.0, in_sync: bool = True) -> float:
        """Start one node again (same data dir); wait until it is registered and, with `in_sync`, until no
        partition is under-replicated. Returns the seconds that took."""
        started = time.monotonic()
        node = self.nodes[node_id]
        node.cluster_id = self._cluster_id()
        node.start(wait=False)

        def back() -> bool:
            if node.pid() is None:
                raise LocalKafkaError(f"Kafka node {node_id} exited on restart:\n{log_tail(node.log_file)}")
            # The node itself answers only once it is registered and unfenced; until then the others'
            # metadata may still show its previous incarnation (in every ISR, not yet fenced).
            if node_id not in self.brokers(via=node_id):
                return False
            return not in_sync or all(self.under_replicated(via=i) == 0 for i in self.running())

        if not wait_until(back, timeout, interval=0.25):
            raise LocalKafkaError(
                f"node {node_id} did not rejoin within {timeout:.0f}s "
                f"({self.under_replicated()} partitions under-replicated)"
            )
        return time.monotonic() - started

    def healthy(self) -> bool:
        """Every node runs and serves, lists every node, and sees no partition under-replicated."""
        if len(self.running()) != self.size:
            return False
        return all(
            self.brokers(via=i) == set(self.nodes) and self.under_replicated(via=i) == 0 for i in self.nodes
        )

    def wait_healthy(self, timeout: float = 120.0) -> float:
        """Wait until `healthy()`; the seconds that took."""
        started = time.monotonic()
        if not wait_until(self.healthy, timeout, interval=0.25):
            raise LocalKafkaError(f"the cluster on {self.bootstrap} was not healthy within {timeout:.0f}s")
        return time.monotonic() - started

    def pause(self, node_id: int) -> None:
        """SIGSTOP one node: alive, holding its sockets and leadership claims, answering nothing."""
        pid = self.nodes[node_id].pid()
        assert pid is not None, f"node {node_id} is not running"
        signal_group(pid, signal.SIGSTOP)

    def resume(self, node_id: int) -> None:
        pid = self.nodes[node_id].pid()
        assert pid is not None, f"node {node_id} is not running"
        signal_group(pid, signal.SIGCONT)

    # --- where things are ---------------------------------------------------------------------------
    def admin(self) -> Any:
        """The cluster's admin client (creating topics), one kept for the cluster's life: librdkafka
        aborts the process (`rd_kafka_enq_once_del_source_return: Assertion eonce->refcnt > 0`,
        librdkafka#4605) when admin clients are destroyed, or admin requests time out, while a broker
        they talk to goes away. So admin requests are only made while every node is up."""
        from confluent_kafka.admin import AdminClient

        with self._clients_lock:
            if "admin" not in self._clients:
                self._clients["admin"] = AdminClient({**self.client_config, "log_level": 2})
            return self._clients["admin"]

    def _metadata_client(self, via: int | None = None) -> Any:
        """A plain client (never an admin one, see `admin`) for metadata requests: the cluster's, kept;
        or, with `via`, a fresh one that knows only that node (a kept one would learn the other brokers
        from its first answer and ask them instead)."""
        from confluent_kafka import Producer

        conf = {"socket.connection.setup.timeout.ms": 2000, "log_level": 2}
        if via is not None:
            return Producer({**conf, "bootstrap.servers": self.nodes[via].bootstrap})
        with self._clients_lock:
            if "metadata" not in self._clients:
                self._clients["metadata"] = Producer({**conf, "bootstrap.servers": self.bootstrap})
            return self._clients["metadata"]

    def brokers(self, timeout: float = 5.0, *, via: int | None = None) -> set[int]:
        """Ids of the brokers the cluster metadata lists (registered and not fenced)."""
        try:
            return set(self._metadata_client(via).list_topics(timeout=timeout).brokers)
        except Exception:  # noqa: BLE001 - no answer: none known
            return set()

    def under_replicated(
        self, topics: Iterable[str] | None = None, timeout: float = 10.0, *, via: int | None = None
    ) -> int:
        """Partitions (of `topics`, default all) whose ISR is smaller than their replica set or that have
        no leader, as the cluster (or node `via`) sees them; -1 when there is no answer."""
        try:
            metadata = self._metadata_client(via).list_topics(timeout=timeout)
        except Exception:  # noqa: BLE001
            return -1
        wanted = set(topics) if topics is not None else set(metadata.topics)
        return sum(
            1
            for name, topic in metadata.topics.items()
            if name in wanted
            for p in topic.partitions.values()
            if len(p.isrs) < len(p.replicas) or p.leader < 0
        )

    def leader_counts(self, topics: Iterable[str], timeout: float = 10.0) -> Counter[int]:
        """How many partitions of `topics` each node leads."""
        metadata = self._metadata_client().list_topics(timeout=timeout)
        return Counter(
            p.leader
            for name in topics
            if name in metadata.topics
            for p in metadata.topics[name].partitions.values()
            if p.leader >= 0
        )

    def active_controller(self) -> int | None:
        """The KRaft quorum leader, from the quorum-state files the voters write (the newest epoch wins).

        Clients cannot ask: with KRaft, the Metadata API names a random broker as "controller"."""
        best: tuple[int, int] | None = None
        for node in self.nodes.values():
            if node.pid() is None:
                continue
            try:
                state = json.loads((node.data_dir / "__cluster_metadata-0" / "quorum-state").read_text())
            except (OSError, ValueError):
                continue
            leader, epoch = int(state.get("leaderId", -1)), int(state.get("leaderEpoch", -1))
            if leader >= 0 and (best is None or epoch > best[1]):
                best = (leader, epoch)
        return best[0] if best else None

    def rss_mb(self) -> dict[int, float]:
        """Resident memory of each running node's JVM, in MiB."""
        out = {}
        for i, node in self.nodes.items():
            pid = node.pid()
            if pid is None:
                continue
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        out[i] = round(int(line.split()[1]) / 1024, 1)
            except OSError:
                continue
        return out
