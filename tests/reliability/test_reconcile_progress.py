"""`refinery-reconcile` tells a long run's progress on stderr (issue 17: a 40 s run said nothing): records
read, topics done, elapsed time, at most one line per interval; stdout keeps only the report."""

from __future__ import annotations

import io
import json
import uuid

import pytest

from refinery.reconcile.reconciler import Progress, main
from tests.refinery.worker.worker_harness import record, send
from tests.support import FakeClock


def test_progress_lines_at_most_once_per_interval() -> None:
    out, clock = io.StringIO(), FakeClock(100.0)
    progress = Progress(5.0, stream=out, clock=clock)
    progress.start_phase("ingest topics", 3)
    progress.read(1000)
    assert out.getvalue() == ""  # nothing before the first interval has passed
    clock.now += 5.5
    progress.read(1500)
    progress.topic_done()  # the same interval: no second line
    clock.now += 6
    progress.topic_done()
    assert out.getvalue().splitlines() == [
        "refinery-reconcile: ingest topics: 2,500 records read, 0/3 topics done, 5.5s elapsed",
        "refinery-reconcile: ingest topics: 2,500 records read, 2/3 topics done, 11.5s elapsed",
    ]
    silent = io.StringIO()
    never = Progress(0, stream=silent, clock=clock)
    clock.now += 100
    never.read(10)
    assert silent.getvalue() == ""


@pytest.mark.integration
def test_cli_prints_progress_to_stderr_and_only_json_to_stdout(
    kafka_bootstrap: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REFINERY_KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    source = f"p{uuid.uuid4().hex[:10]}"
    topic = f"dev.{source}.ingest.all-v1"
    items = []
    for _ in range(300):
        value, headers = record("dev", source, "1234", "match_started")
        items.append((None, value, headers))
    send(kafka_bootstrap, topic, items)
    code = main(
        [
            "--routes", "refinery/routes/workload.yaml", "--ingest-pattern", f"^{topic}$",
            "--dlq-topic", f"_none_{source}", "--progress-every", "0.000001", "--json",
        ]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code in (0, 1)  # nothing was routed: the records count as lost, which is not the point here
    assert json.loads(captured.out)["sent"] == 300  # stdout is the JSON report alone
    lines = [line for line in captured.err.splitlines() if line.startswith("refinery-reconcile: ")]
    assert any("ingest topics: " in line and "1/1 topics done" in line for line in lines), captured.err
    assert all("records read" in line and "s elapsed" in line for line in lines)
    assert "refinery-reconcile: ingest topics: 300 records read" in captured.err

    main(["--routes", "refinery/routes/workload.yaml", "--ingest-pattern", f"^{topic}$",
          "--dlq-topic", f"_none_{source}", "--progress-every", "0", "--json"])  # fmt: skip
    assert "records read" not in capsys.readouterr().err
