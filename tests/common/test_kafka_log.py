"""librdkafka's log through Python logging (deduplicated, at WARNING at most) and the one-line cause."""

from __future__ import annotations

import logging

import pytest

from common.kafka_log import LibrdkafkaLog, describe_failure, error_text, kafka_unreachable, with_log
from tests.support import free_port

FAIL = (
    "127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused "
    "(after {ms}ms in state CONNECT)"
)


def test_repeats_are_dropped_and_errors_capped_at_warning(caplog: pytest.LogCaptureFixture) -> None:
    shim = LibrdkafkaLog("test.librdkafka")
    with caplog.at_level(logging.DEBUG, logger="test.librdkafka"):
        for ms, client in [(0, "rdkafka#producer-1"), (3, "rdkafka#producer-1"), (0, "rdkafka#consumer-2")]:
            shim.log(logging.ERROR, "%s [%s] %s", "FAIL", client, FAIL.format(ms=ms))
        shim.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#producer-1", "other broker down")
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, f"FAIL: {FAIL.format(ms=0)}"),
        (logging.WARNING, "FAIL: other broker down"),
    ]


def test_with_log_adds_the_logger_and_keeps_the_rest() -> None:
    conf = with_log({"bootstrap.servers": "x:1"})
    assert conf["bootstrap.servers"] == "x:1" and isinstance(conf["logger"], LibrdkafkaLog)


def test_unreachable_names_the_address_and_the_cause() -> None:
    port = free_port()
    expected = f"Kafka at 127.0.0.1:{port} is unreachable: connection refused"
    assert kafka_unreachable(f"127.0.0.1:{port}") == expected
    assert describe_failure(f"127.0.0.1:{port}", "x").endswith("connection refused")
    bad_host = kafka_unreachable("no-such-host.invalid:9092")
    assert bad_host is not None and bad_host.startswith(
        "Kafka at no-such-host.invalid:9092 is unreachable: cannot resolve the host name"
    )
    assert error_text(ValueError("plain")) == "plain"


def test_a_listening_address_is_reachable() -> None:
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        host, port = server.getsockname()
        assert kafka_unreachable(f"127.0.0.1:{free_port()},{host}:{port}") is None
        assert describe_failure(f"{host}:{port}", "no answer") == f"Kafka at {host}:{port}: no answer"
