"""The Refinery Faust app. This module only builds the App (the shape of Faust's
examples/fastapi_project/my_faust); services, web views and CLI commands live in their own modules and
are found by autodiscovery.

Faust hosts the control plane: the live route set, web views (/routes, /stats, /metrics), the stats
timer and the `refinery routes ...` commands. The records themselves flow through the batched
confluent-kafka loop in `refinery.worker.dataplane`, which `refinery.control.services` runs inside this app.

Transport: Faust's own needs go through aiokafka (`kafka://`; the `confluent://` driver lags it). The
app has no agents or tables, so its only Kafka footprint is Faust's one-partition assignor topic and a
consumer group named `{group_id}-control`, kept apart from the data plane's group.
"""

from __future__ import annotations

import ssl
import sys
from typing import Any

import faust
from faust.types.auth import CredentialsT
from prometheus_client import ProcessCollector

from common.config import KafkaSettings, WorkerSettings
from common.errors import ConfigError
from common.logs import logging_dict_config
from refinery.worker.metrics import WorkerMetrics

SERVICE_MODULES = [
    "refinery.control.services",
    "refinery.control.route_views",
    "refinery.control.status_views",
    "refinery.control.commands",
    "refinery.control.dlq_commands",
]


class RefineryApp(faust.App):
    """A Faust app that also carries the worker's settings and metrics, so services, views and
    commands share them through the app rather than through module-level state."""

    worker_settings: WorkerSettings
    kafka_settings: KafkaSettings
    metrics: WorkerMetrics
    routing: Any = None  # the running `refinery.control.services.RoutingService`, once started


def faust_credentials(kafka: KafkaSettings) -> CredentialsT | None:
    """Faust's `broker_credentials` for the same security settings the confluent clients get from
    `KafkaSettings.client_config()`, so the control plane and the data plane connect alike."""
    protocol = kafka.security_protocol.upper()
    context = ssl.create_default_context(cafile=kafka.ssl_ca_location) if "SSL" in protocol else None
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        password = kafka.sasl_password.get_secret_value() if kafka.sasl_password is not None else None
        return faust.SASLCredentials(
            username=kafka.sasl_username,
            password=password,
            mechanism=kafka.sasl_mechanism or "PLAIN",
            ssl_context=context,
        )
    raise ConfigError(
        f"REFINERY_KAFKA_SECURITY_PROTOCOL {kafka.security_protocol!r} is not one of "
        "PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"
    )


def create_app(settings: WorkerSettings | None = None, kafka: KafkaSettings | None = None) -> RefineryApp:
    settings = settings or WorkerSettings()
    kafka = kafka or KafkaSettings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = RefineryApp(
        f"{settings.group_id}-control",
        broker=[f"kafka://{server.strip()}" for server in kafka.bootstrap_servers.split(",")],
        broker_credentials=faust_credentials(kafka),
        autodiscover=SERVICE_MODULES,
        origin="refinery",
        store="memory://",
        web_enabled=True,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        datadir=str(settings.data_dir / "{conf.id}"),
        logging_config=logging_dict_config(),
        broker_session_timeout=settings.session_timeout_ms / 1000,
        broker_heartbeat_interval=settings.session_timeout_ms / 3000,
        topic_partitions=1,
        # Faust's aiokafka admin request cannot ask for the broker's default (-1), and its only topic
        # (the assignor-leader topic) holds no data: one replica then, or the count set explicitly.
        topic_replication_factor=max(settings.internal_replication, 1),
    )
    app.worker_settings = settings
    app.kafka_settings = kafka
    app.metrics = WorkerMetrics()
    ProcessCollector(registry=app.metrics.registry)  # process_cpu_seconds_total, resident memory, fds
    return app


app = create_app()


HELP = """usage: refinery COMMAND [ARGS]   (refinery COMMAND --help for a command's own help)

Refinery's control plane (settings: REFINERY_* variables, see common/config.py).

commands:
  worker                 run a worker: the data plane and /routes, /stats, /health, /ready, /metrics
  routes validate FILE   check a route file (never touches Kafka); exit 0, or 2 naming the problem
  routes diff FILE       what applying FILE would add, remove and change (read-only)
  routes apply FILE      publish a route set (drop guard; --force, --user/--password with auth on)
  routes show            the live route set (read-only)
  routes history         every published set, newest first
  dlq replay             re-send dead letters of one reason to their ingest topic:
                         --reason R --since T [--dry-run]

Faust's own commands (agents, tables, send, livecheck, ...): refinery --faust-help
"""


def main() -> None:
    """`refinery worker`, `refinery routes ...`, `refinery dlq replay ...` (Faust's CLI); `refinery
    --help` lists our commands, `refinery --faust-help` Faust's."""
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help", "help"):
        print(HELP, end="")
        return
    if args[0] == "--faust-help":
        sys.argv[1:2] = ["--help"]
    if args[:1] == ["worker"] and not any(a.startswith(("-l", "--loglevel")) for a in args):
        # Below WARN Faust skips its terminal spinner, which would otherwise lower the root logger to
        # DEBUG (building a record for every debug call). Levels themselves come from LogSettings.
        sys.argv[2:2] = ["--loglevel", "info"]
    app.main()
