"""The catalog reports each worker from its /stats: rates summed, and a worker that answers but is not
ready (paused, stalled) is shown as such with its reason, not as "up"."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from common.config import CatalogSettings, RegistrySettings
from refinery.catalog.app import CatalogMetrics, CatalogSources

READY = {"worker": "w0", "running": True, "state": "running", "ready": True, "why": "running",
         "routes": {"kills": {"total": 10.0, "per_second": 2.0}}}  # fmt: skip
PAUSED = {"worker": "w1", "running": True, "state": "paused", "ready": False,
          "paused_reason": "dlq_unwritable",
          "why": "paused (dlq_unwritable): the DLQ '_refinery_dlq' refused a dead letter",
          "routes": {"kills": {"total": 5.0, "per_second": 1.0}}}  # fmt: skip


def _sources(answers: dict[str, Any]) -> CatalogSources:
    urls = ",".join(answers)
    sources = CatalogSources(
        CatalogSettings(worker_urls=urls),
        RegistrySettings(),
        CatalogMetrics(),
        schema_client=object(),  # type: ignore[arg-type]
    )

    def handler(request: httpx.Request) -> httpx.Response:
        base = f"{request.url.scheme}://{request.url.host}:{request.url.port}"
        answer = answers[base]
        if answer is None:
            raise httpx.ConnectError("refused", request=request)
        assert request.url.path == "/stats"  # /routes may need credentials; /stats never does
        return httpx.Response(200, json=answer)

    sources.client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return sources


def test_a_paused_worker_is_not_up_and_says_why() -> None:
    sources = _sources(
        {"http://127.0.0.1:1": READY, "http://127.0.0.1:2": PAUSED, "http://127.0.0.1:3": None}
    )
    rates, statuses = asyncio.run(sources.workers())
    assert rates == {"kills": {"total": 15.0, "per_second": 3.0}}
    by_url = {s["url"]: s for s in statuses}
    assert by_url["http://127.0.0.1:1"]["ok"] is True
    paused = by_url["http://127.0.0.1:2"]
    assert (
        paused["ok"] is False and paused["state"] == "paused" and paused["paused_reason"] == "dlq_unwritable"
    )
    assert "refused a dead letter" in paused["why"]
    down = by_url["http://127.0.0.1:3"]
    assert down["ok"] is False and down["state"] == "down" and "ConnectError" in down["error"]
