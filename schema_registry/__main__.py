"""`refinery-registry`: run the schema registry service with uvicorn.

refinery-registry --port 8081 --topic _schemas
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import uvicorn

from common.config import KafkaSettings, LogSettings, RegistrySettings
from common.logs import configure_logging
from schema_registry.app import create_app


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="refinery-registry", description=__doc__.splitlines()[0])
    parser.add_argument("--host", help="interface to listen on (REFINERY_REGISTRY_HOST)")
    parser.add_argument("--port", type=int, help="port to listen on (REFINERY_REGISTRY_PORT)")
    parser.add_argument("--topic", help="the schemas topic (REFINERY_REGISTRY_TOPIC)")
    parser.add_argument(
        "--bootstrap-servers", help="Kafka bootstrap servers (REFINERY_KAFKA_BOOTSTRAP_SERVERS)"
    )
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in {"host": args.host, "port": args.port, "topic": args.topic}.items() if v}
    settings = RegistrySettings(**overrides)
    kafka = KafkaSettings(**({"bootstrap_servers": args.bootstrap_servers} if args.bootstrap_servers else {}))
    log_settings = LogSettings()
    configure_logging(log_settings)
    uvicorn.run(
        create_app(settings, kafka),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        http="httptools",  # both come with uvicorn[standard]; named so a missing one fails loudly
        loop="uvloop",
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
