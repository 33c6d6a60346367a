"""Who serves the SDK's delivery reports: a thread that is sending serves them itself every
`SENDS_PER_SERVE` records, the background poll thread when nobody sends, and never a thread that is
inside a delivery callback (confluent-kafka aborts the process when its poll re-enters there)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading

import pytest

from common.config import KafkaSettings, RegistrySettings
from producers.producer import SENDS_PER_SERVE, Producer

pytestmark = pytest.mark.integration

HEARTBEAT = {"session_id": "s", "player_id": "p", "sent_at_ms": 1, "latency_ms": 3.5}


def test_the_poll_thread_serves_reports_when_nobody_sends(producer: Producer, workload_title: str) -> None:
    threads: list[str] = []
    handle = producer.send(
        workload_title, "session_heartbeat", 1, HEARTBEAT, on_delivery=lambda *_: threads.append(_name())
    )
    assert handle.result(timeout=30).offset >= 0
    assert threads == ["refinery-producer-poll"]


def test_a_busy_sender_serves_reports_itself(producer: Producer, workload_title: str) -> None:
    count = 200 * SENDS_PER_SERVE
    served_while_sending: list[str] = []
    sending = True

    def on_delivery(*_: object) -> None:
        if sending:
            served_while_sending.append(_name())

    handles = [
        producer.send(workload_title, "session_heartbeat", 1, HEARTBEAT, on_delivery=on_delivery)
        for _ in range(count)
    ]
    sending = False
    producer.flush(60)
    assert all(h.result(0).offset >= 0 for h in handles)
    assert "MainThread" in served_while_sending, "the sending thread never served a report while sending"


SCRIPT = textwrap.dedent(
    """
    import json, sys, threading
    from common.config import KafkaSettings, ProducerSettings, RegistrySettings
    from producers.producer import Producer

    bootstrap, registry, env, title = sys.argv[1:5]
    payload = {"session_id": "s", "player_id": "p", "sent_at_ms": 1, "latency_ms": 3.5}
    producer = Producer(
        ProducerSettings(env=env, source="telemetry", partitions=1),
        kafka=KafkaSettings(bootstrap_servers=bootstrap),
        registry=RegistrySettings(url=registry),
    )
    refused, chained, done = {}, [], threading.Event()

    def on_delivery(error, delivered):
        for call in ("flush", "poll", "close"):
            if call not in refused:
                try:
                    getattr(producer, call)()
                    refused[call] = "allowed"
                except Exception as exc:
                    refused[call] = type(exc).__name__
        if len(chained) < CHAIN:  # send the next record from inside this callback
            chained.append(producer.send(title, "session_heartbeat", 1, payload, on_delivery=on_delivery))
        else:
            done.set()

    CHAIN = int(sys.argv[5])
    producer.send(title, "session_heartbeat", 1, payload, on_delivery=on_delivery)
    finished = done.wait(120)
    producer.close(60)
    offsets = [h.result(0).offset for h in chained]
    print(json.dumps({"finished": finished, "refused": refused, "delivered": len(offsets)}))
    """
)


def test_a_delivery_callback_may_send_but_not_serve_reports(
    kafka: KafkaSettings, registry: RegistrySettings, workload_title: str, unique_name: str
) -> None:
    """Callbacks that send the next record: every `SENDS_PER_SERVE`-th of those sends would serve reports
    inside a callback, which aborts the process unless the producer holds back; flush, poll and close
    there are refused with a clear error. Run in a child process, so a regression fails this test
    instead of aborting the suite."""
    chain = 3 * SENDS_PER_SERVE
    args = [kafka.bootstrap_servers, registry.url, unique_name, workload_title, str(chain)]
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, timeout=180, check=False
    )
    assert run.returncode == 0, run.stderr[-2000:]
    outcome = json.loads(run.stdout.strip().splitlines()[-1])
    refused = dict.fromkeys(("flush", "poll", "close"), "ProducerUsageError")
    assert outcome == {"finished": True, "refused": refused, "delivered": chain}


def _name() -> str:
    return threading.current_thread().name
