"""Through a running `refinery worker` on the real broker: a record on a prod ingest topic whose headers
say prod but whose envelope says dev goes to the DLQ as `env_mismatch` and never reaches a prod topic;
headers that lie about another routing field go there as `header_mismatch`."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.headers import Headers
from refinery.control.route_store import publish_route_set
from refinery.routing import dlq
from refinery.routing.rules import load_route_set
from tests.refinery.worker.worker_harness import WorkerProcess, record, send, worker_env
from tests.support import consume_all

pytestmark = pytest.mark.integration

ROUTES = """
routes:
  - name: all
    match: {env: prod}
    to: {template: "{env}.{source}.{title}.all-v1"}
"""


def _headers_saying(headers: Headers, name: str, value: bytes) -> Headers:
    return [(k, value if k == name else v) for k, v in headers]


def test_a_dev_envelope_with_prod_headers_is_dead_lettered_as_env_mismatch(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    name = unique_name
    env = worker_env(kafka_bootstrap, name, tmp_path)
    publish_route_set({"bootstrap.servers": kafka_bootstrap}, env["REFINERY_WORKER_ROUTES_TOPIC"],
                      load_route_set(ROUTES))  # fmt: skip
    honest = record("prod", name, "1234", "kill")
    dev_value, dev_headers = record("dev", name, "1234", "kill")
    lying_env = (dev_value, _headers_saying(dev_headers, "ce_env", b"prod"))
    title_value, title_headers = record("prod", name, "4321", "kill")
    lying_title = (title_value, _headers_saying(title_headers, "ce_title", b"1234"))
    send(kafka_bootstrap, f"prod.{name}.ingest.all-v1",
         [(b"honest", *honest), (b"env", *lying_env), (b"title", *lying_title)])  # fmt: skip
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        dead = consume_all(kafka_bootstrap, [f"_{name}-dlq"], expected=2, timeout=60)
        routed = consume_all(kafka_bootstrap, [f"prod.{name}.1234.all-v1"], expected=1, timeout=30, idle=2)
    finally:
        worker.stop()
    assert [m.key() for m in routed] == [b"honest"]
    errors = {m.key(): {k: v for k, v in m.headers() or [] if isinstance(v, bytes)} for m in dead}
    assert set(errors) == {b"env", b"title"}
    assert errors[b"env"][dlq.REASON] == b"env_mismatch"
    assert b"'dev'" in errors[b"env"][dlq.MESSAGE] and b"'prod'" in errors[b"env"][dlq.MESSAGE]
    assert errors[b"title"][dlq.REASON] == b"header_mismatch"
    assert b"ce_title" in errors[b"title"][dlq.MESSAGE] and b"'4321'" in errors[b"title"][dlq.MESSAGE]
