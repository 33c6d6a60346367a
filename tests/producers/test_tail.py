"""`refinery-client tail` with kcat's habits and `refinery-client topics`, against the real broker."""

from __future__ import annotations

import io
import json
import re
import time

import pytest

from common.config import KafkaSettings, ProducerSettings, RegistrySettings
from common.topics import ingest_topic
from producers import cli
from producers.producer import Producer
from producers.schemas import SchemaCatalog

pytestmark = pytest.mark.integration
PING = '{"type": "record", "name": "Ping", "fields": [{"name": "n", "type": "int"}]}'


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return cli.main(list(argv), stdout=out), out.getvalue()


@pytest.fixture(scope="module")
def sent(request: pytest.FixtureRequest) -> dict[str, object]:
    """12 records on a fresh 3-partition ingest topic: titles 1234/2001/2002, platforms pc/ps, with the
    produce time of the 7th record (the first of the second half)."""
    bootstrap = request.getfixturevalue("kafka_bootstrap")
    registry_url = request.getfixturevalue("registry_url")
    env = f"tail{int(time.time() * 1000)}"
    catalog = SchemaCatalog.from_settings(RegistrySettings(url=registry_url))
    for title in ("1234", "2001", "2002"):
        catalog.register(title, "ping", PING, "AVRO", version=1)
    settings = ProducerSettings(env=env, source="telemetry", partitions=3)
    kafka = KafkaSettings(bootstrap_servers=bootstrap)
    middle_ms = 0
    with Producer(settings, kafka=kafka, catalog=catalog) as producer:
        for n in range(12):
            if n == 6:
                producer.flush(10)
                time.sleep(0.05)
                middle_ms = int(time.time() * 1000)
            title = ("1234", "2001", "2002")[n % 3]
            attrs = {"platform": "pc" if n % 2 == 0 else "ps"}
            producer.send(title, "ping", 1, {"n": n}, key=f"k{n % 4}", attributes=attrs).result(10)
    catalog.close()
    conn = ["--bootstrap", bootstrap, "--registry-url", registry_url]
    return {"topic": ingest_topic(env, "telemetry"), "conn": conn, "middle_ms": middle_ms, "env": env}


def tail(sent: dict[str, object], *args: str) -> tuple[int, str]:
    conn = sent["conn"]
    assert isinstance(conn, list)
    return run(*conn, "tail", str(sent["topic"]), "-e", "--idle-timeout", "20", *args)


def numbers(text: str) -> list[int]:
    return sorted(json.loads(line)["payload"]["n"] for line in text.splitlines())


def test_offsets_partitions_and_exit_at_end(sent: dict[str, object]) -> None:
    code, out = tail(sent, "--offset", "beginning")
    assert code == 0 and numbers(out) == list(range(12))
    assert tail(sent, "--offset", "end") == (0, "")  # -e: nothing after the end, and it stops
    code, out = tail(sent, "--offset", "-1")  # the last record of each of the 3 partitions
    assert code == 0 and len(out.splitlines()) == 3
    code, out = tail(sent, "--offset", "beginning", "--partition", "0")
    partitions = {json.loads(line)["partition"] for line in out.splitlines()}
    assert code == 0 and partitions == {0} and 0 < len(out.splitlines()) < 12
    in_partition_0 = len(out.splitlines())
    code, out = tail(sent, "--offset", "1", "--partition", "0")  # absolute: skips offset 0
    assert code == 0 and [json.loads(line)["offset"] for line in out.splitlines()][:1] == [1]
    assert len(out.splitlines()) == in_partition_0 - 1
    code, out = tail(sent, "--from-time", str(sent["middle_ms"]))
    assert code == 0 and numbers(out) == list(range(6, 12))


def test_where_uses_the_route_set_syntax(sent: dict[str, object]) -> None:
    env = str(sent["env"])
    code, out = tail(sent, "--offset", "beginning", "--where", "attribute.platform=pc", "--where", "title=2*")
    assert code == 0 and numbers(out) == [2, 4, 8, 10]
    code, out = tail(sent, "-o", "beginning", "--where", "attr.platform=ps", "--where", f"env={env}")
    assert code == 0 and numbers(out) == [1, 3, 5, 7, 9, 11]
    code, out = tail(sent, "-o", "beginning", "--where", "title!=1234")
    assert code == 0 and len(numbers(out)) == 8


def test_unknown_where_fields_and_bad_flags_exit_2(
    sent: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    known = "message_id, env, source, title, category, version, schema_id, format, producer, attribute.<name>"
    for clause in ("platform=pc", "bogus=1"):
        assert tail(sent, "--where", clause) == (2, "")
        field = clause.split("=")[0]
        assert capsys.readouterr().err == (
            f"refinery-client: --where {clause!r}: unknown field {field!r}; known fields: {known}\n"
        )
    assert tail(sent, "--offset", "middle") == (2, "")
    assert capsys.readouterr().err == "refinery-client: --offset 'middle' must be beginning, end, N or -N\n"
    assert tail(sent, "--partition", "7") == (2, "")
    assert f"topic {sent['topic']!r} has no partition 7 (it has 0..2)" in capsys.readouterr().err


def test_formats(sent: dict[str, object]) -> None:
    code, out = tail(sent, "-o", "beginning", "-p", "0", "--format", "raw")
    assert code == 0 and all(json.loads(line).keys() == {"n"} for line in out.splitlines())
    code, out = tail(sent, "-o", "beginning", "-p", "0", "--format", "table")
    lines = out.splitlines()
    assert lines[0].split() == [
        "TOPIC",
        "PARTITION",
        "OFFSET",
        "TITLE",
        "CATEGORY",
        "VERSION",
        "KEY",
        "PAYLOAD",
    ]
    assert lines[1].split()[:3] == [str(sent["topic"]), "0", "0"]
    assert re.search(r'  ping  1  k\d  \{"n":\d+\}$', lines[1]), lines[1]
    code, out = tail(sent, "-o", "beginning", "-p", "0", "--format", "json", "--max", "1")
    assert code == 0 and json.loads(out)["partition"] == 0 and out.count("\n") > 3  # pretty-printed


def test_topics_lists_derived_topics_with_counts(kafka_bootstrap: str, unique_name: str) -> None:
    from confluent_kafka import Producer as KafkaProducer
    from confluent_kafka.admin import AdminClient, NewTopic

    derived = f"{unique_name}.telemetry.1234.ping-v1"
    ingest = ingest_topic(unique_name, "telemetry")
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    for future in admin.create_topics([NewTopic(derived, 2, 1), NewTopic(ingest, 1, 1)]).values():
        future.result(30)
    producer = KafkaProducer({"bootstrap.servers": kafka_bootstrap})
    for n in range(5):
        producer.produce(derived, b"x", partition=n % 2)
    assert producer.flush(30) == 0
    code, out = run("--bootstrap", kafka_bootstrap, "topics", f"{unique_name}.*", "--format", "jsonl")
    assert code == 0 and [json.loads(line) for line in out.splitlines()] == [
        {"topic": derived, "partitions": 2, "records": 5}
    ]
    code, out = run("--bootstrap", kafka_bootstrap, "topics", f"{unique_name}.*")
    assert out.splitlines()[1].split() == [derived, "2", "5"]


def test_produce_refuses_an_env_outside_the_configured_set(
    kafka_bootstrap: str, registry_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    conn = ["--bootstrap", kafka_bootstrap, "--registry-url", registry_url]
    for env in ("PROD", "staging"):
        argv = [*conn, "produce", "--title", "1234", "--category", "ping", "--version", "1", "--env", env]
        assert run(*argv) == (2, "")
        assert capsys.readouterr().err == (
            f"refinery-client: env {env!r} is not one of the configured envs (dev, prod; "
            "REFINERY_PRODUCER_ALLOWED_ENVS): nothing routes its records; pass --allow-env to send anyway\n"
        )
