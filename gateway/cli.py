"""`refinery-gateway`: run the HTTP ingest gateway, and manage its API keys.

    refinery-gateway serve [--host H] [--port P] [--workers N]
    refinery-gateway keys create --env prod --title 1234 --source telemetry [--source backend]
                                 [--category match_started ...] [--rate 2000] [--name "ios client"]
                                 [--save FILE [--reuse]]
    refinery-gateway keys list [--json]
    refinery-gateway keys revoke KEY_ID

`keys create` prints the new key once (it is stored only hashed); `--save FILE` also writes it to FILE
(mode 600) and, with `--reuse`, keeps the key already in FILE while the topic still knows it unrevoked
(the local stack's demo key). Exit codes: 0 done, 1 Kafka unreachable, 2 bad input (unknown key id...).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from common.config import GatewaySettings, KafkaSettings, LogSettings
from common.errors import InvalidInputError
from gateway.keys import (
    KeyRing,
    KeyScope,
    KeyStoreError,
    ensure_keys_topic,
    key_id_of,
    new_key,
    publish_key,
    read_keys,
    revoked,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="refinery-gateway", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--bootstrap-servers", help="Kafka bootstrap servers (REFINERY_KAFKA_BOOTSTRAP_SERVERS)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--host", help="interface (REFINERY_GATEWAY_HOST)")
    serve.add_argument("--port", type=int, help="port (REFINERY_GATEWAY_PORT)")
    serve.add_argument("--workers", type=int, help="server processes (REFINERY_GATEWAY_WORKERS)")
    keys = commands.add_parser("keys", help="create, list and revoke API keys").add_subparsers(
        dest="keys_command", required=True
    )
    create = keys.add_parser("create", help="create a key and print it (once)")
    create.add_argument("--env", required=True, help="the env every event of this key goes to")
    create.add_argument("--title", required=True, help="the title (game id) of every event")
    create.add_argument("--source", action="append", required=True, help="a source it may send as (repeat)")
    create.add_argument("--category", action="append", help="a category it may send (repeat; default: all)")
    create.add_argument(
        "--rate", type=float, help="events/s (default REFINERY_GATEWAY_RATE_LIMIT_EVENTS_PER_S)"
    )
    create.add_argument("--name", default="", help="what the key is for")
    create.add_argument("--save", type=Path, help="also write the key to this file (mode 600)")
    create.add_argument(
        "--reuse", action="store_true", help="with --save: keep a still-valid key in the file"
    )
    listing = keys.add_parser("list", help="list keys (never the keys themselves)")
    listing.add_argument("--json", action="store_true")
    revoke = keys.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    kafka = KafkaSettings(**({"bootstrap_servers": args.bootstrap_servers} if args.bootstrap_servers else {}))
    if args.command == "serve":
        return serve(args, kafka)
    from common.logs import configure_logging

    configure_logging(LogSettings(), level="WARNING")
    settings = GatewaySettings()
    conf = kafka.client_config()
    try:
        if args.keys_command == "create":
            return create(args, settings, conf)
        ring = read_keys(conf, settings.keys_topic)
        if args.keys_command == "list":
            return list_keys(ring, as_json=args.json)
        return revoke_key(args.key_id, ring, settings, conf)
    except KeyStoreError as exc:
        print(f"refinery-gateway: {exc}", file=sys.stderr)
        return 1
    except InvalidInputError as exc:
        print(f"refinery-gateway: {exc}", file=sys.stderr)
        return 2


def who() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def create(args: argparse.Namespace, settings: GatewaySettings, conf: dict) -> int:
    scope = KeyScope(
        args.env, args.title, tuple(args.source), tuple(args.category) if args.category else None
    )
    if args.save and args.reuse and args.save.exists():
        token = args.save.read_text().strip()
        key_id = key_id_of(token)
        kept = read_keys(conf, settings.keys_topic).authenticate(token) if key_id else None
        if kept is not None:
            print(json.dumps({"id": kept.id, "reused": True, "file": str(args.save)}))
            return 0
    token, key = new_key(scope, name=args.name, rate=args.rate, created_by=who())
    ensure_keys_topic(conf, settings.keys_topic, replication_factor=settings.keys_replication)
    publish_key(conf, settings.keys_topic, key)
    if args.save:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(args.save, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(token + "\n")
    print(json.dumps({"id": key.id, "key": token, **({"file": str(args.save)} if args.save else {})}))
    print("store the key now: it is shown only once", file=sys.stderr)
    return 0


def list_keys(ring: KeyRing, *, as_json: bool) -> int:
    keys = [k.describe() for k in ring.all()]
    if as_json:
        print(json.dumps(keys, indent=2))
        return 0
    print(
        f"{'id':<12}  {'state':<8}  {'env':<6} {'title':<8} {'sources':<20} {'categories':<24} "
        f"{'rate':>8}  name"
    )
    for k in keys:
        scope = k["scope"]
        state = "revoked" if k["revoked_at"] else "active"
        categories = ",".join(scope["categories"]) if scope["categories"] is not None else "*"
        rate = f"{k['rate']:g}" if k["rate"] else "default"
        print(f"{k['id']:<12}  {state:<8}  {scope['env']:<6} {scope['title']:<8} "
              f"{','.join(scope['sources']):<20} {categories:<24} {rate:>8}  {k['name']}")  # fmt: skip
    return 0


def revoke_key(key_id: str, ring: KeyRing, settings: GatewaySettings, conf: dict) -> int:
    key = ring.get(key_id)
    if key is None:
        print(
            f"refinery-gateway: no key with id {key_id!r} (see `refinery-gateway keys list`)",
            file=sys.stderr,
        )
        return 2
    if not key.active:
        print(json.dumps({"id": key.id, "revoked_at": key.revoked_at, "already": True}))
        return 0
    gone = revoked(key, who())
    publish_key(conf, settings.keys_topic, gone)
    print(json.dumps({"id": gone.id, "revoked_at": gone.revoked_at}))
    return 0


def serve(args: argparse.Namespace, kafka: KafkaSettings) -> int:
    import uvicorn

    from common.logs import configure_logging

    overrides = {
        k: v for k, v in {"host": args.host, "port": args.port, "workers": args.workers}.items() if v
    }
    settings = GatewaySettings(**overrides)
    # Processes started by uvicorn for --workers read their settings from the environment: pass ours on.
    for name, value in (
        ("REFINERY_GATEWAY_HOST", settings.host),
        ("REFINERY_GATEWAY_PORT", str(settings.port)),
        ("REFINERY_GATEWAY_WORKERS", str(settings.workers)),
        ("REFINERY_KAFKA_BOOTSTRAP_SERVERS", kafka.bootstrap_servers),
    ):
        os.environ[name] = value
    configure_logging()
    uvicorn.run(
        "gateway.app:app_from_environment",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers if settings.workers > 1 else None,
        log_config=None,
        access_log=False,  # an access log could carry what clients put in URLs; keys travel in headers
        http="httptools",
        loop="uvloop",
        timeout_graceful_shutdown=10,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
