"""Screenshots of the catalog's topic page, dead-letter workbench, lineage and search, taken with Debian's
headless Chromium against a running stack (`bash scripts/run.sh`, or `refinery-stack up` on your own ports):

    .venv/bin/python scripts/catalog_screenshots.py --seed-dead-letters
    .venv/bin/python scripts/catalog_screenshots.py --catalog http://127.0.0.1:8090 --out docs/screenshots

`--seed-dead-letters` first sends a few records of the workload's bad-input mix to the ingest topics (no
headers, a truncated envelope, an unknown schema id, an env header that contradicts the topic, a JSON
payload with the wrong env) so the workbench has reasons to show (the workers dead-letter them), and
commits part of the topic shown for an analyst's consumer group, so its lag shows.
Kafka and the registry come from the usual settings (REFINERY_KAFKA_BOOTSTRAP_SERVERS, REFINERY_REGISTRY_URL).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from confluent_kafka import Consumer, Producer

from common.config import REPO_ROOT, KafkaSettings
from common.envelope import encode_envelope, make_envelope
from common.headers import metadata_to_headers
from producers.schemas import SchemaCatalog

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--virtual-time-budget=10000"]  # fmt: skip
TOPIC = "prod.telemetry.all.player_killed-v2"
SHOTS = {  # file -> (page, window size)
    "catalog-topic.png": (f"/catalog/ui/topic?name={TOPIC}&records=3", "1400,2300"),
    "catalog-dlq.png": ("/catalog/ui/dlq?limit=12", "1400,1500"),
    "catalog-lineage.png": ("/catalog/ui/lineage", "1600,1300"),
    "catalog-search.png": ("/catalog/ui?q=1234%20kill", "1400,1100"),
}


def seed_dead_letters(kafka: KafkaSettings) -> int:
    """Send the bad-input mix (see the module docstring); return how many records were sent."""
    catalog = SchemaCatalog.from_settings()
    heartbeat = catalog.resolve("1234", "session_heartbeat", 1)
    payload = json.dumps({"session_id": "s-42", "player_id": "p-7", "sent_at_ms": int(time.time() * 1000),
                          "latency_ms": 48.5}).encode()  # fmt: skip
    catalog.close()

    def envelope(env: str, schema_id: int, fmt: str, body: bytes) -> tuple[bytes, list[tuple[str, bytes]]]:
        made = make_envelope(env=env, source="telemetry", title="1234", category="session_heartbeat",
                             version=1, schema_id=schema_id, payload_format=fmt, payload=body,
                             producer="screenshots/1", attributes={"platform": "pc"})  # fmt: skip
        return encode_envelope(made), list(metadata_to_headers(made.metadata))

    good_value, good_headers = envelope("prod", heartbeat.schema_id, "json", payload)
    dev_value, dev_headers = envelope("dev", heartbeat.schema_id, "json", payload)
    unknown_value, unknown_headers = envelope("prod", 987_654, "raw", b"\x01\x02opaque")
    records = [
        (os.urandom(48), []),  # no headers at all: missing_header
        (good_value[: len(good_value) // 2], good_headers),  # truncated envelope
        (unknown_value, unknown_headers),  # unknown schema id
        (dev_value, dev_headers),  # env header dev on the prod ingest topic: env_mismatch
        (good_value, [(k, v) for k, v in good_headers if k != "ce_env"]),  # no ce_env: missing_header
    ]
    producer = Producer(kafka.client_config())
    for value, headers in records:
        producer.produce("prod.telemetry.ingest.all-v1", value, b"screenshot-match", headers=headers)
    if producer.flush(30) != 0:
        raise SystemExit("catalog_screenshots: Kafka did not take the seeded records within 30s")
    return len(records)


def seed_consumer_group(kafka: KafkaSettings, topic: str, group: str = "analytics-notebook") -> int:
    """An analyst's consumer group that read part of `topic` and committed: the topic page shows its lag."""
    consumer = Consumer({**kafka.client_config(), "group.id": group, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})  # fmt: skip
    consumer.subscribe([topic])
    read = 0
    deadline = time.monotonic() + 20
    while read < 300 and time.monotonic() < deadline:
        read += len([m for m in consumer.consume(100, timeout=1.0) if m.error() is None])
    if read:
        consumer.commit(asynchronous=False)
    consumer.close()
    return read


def screenshot(chromium: str, url: str, size: str, out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        done = subprocess.run(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={size}",
             f"--screenshot={out}", url],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    if done.returncode != 0 or not out.exists():
        raise SystemExit(f"catalog_screenshots: chromium failed on {url}: {done.stderr[-500:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--catalog", default=f"http://127.0.0.1:{os.environ.get('REFINERY_CATALOG_PORT', 8090)}"
    )
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "screenshots")
    parser.add_argument("--seed-dead-letters", action="store_true")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args(argv)
    if not Path(args.chromium).exists():
        print("catalog_screenshots: no chromium (Debian: apt-get install chromium)", file=sys.stderr)
        return 2
    if args.seed_dead_letters:
        print(
            f"seeded {seed_dead_letters(KafkaSettings())} bad records; waiting for the workers",
            file=sys.stderr,
        )
        read = seed_consumer_group(KafkaSettings(), TOPIC)
        print(f"consumer group analytics-notebook read {read} records of {TOPIC}", file=sys.stderr)
        time.sleep(5)
    httpx.get(f"{args.catalog}/catalog", timeout=10).raise_for_status()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, (page, size) in SHOTS.items():
        screenshot(args.chromium, args.catalog + page, size, args.out / name)
        print(args.out / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
