"""GET/POST /routes and GET /routes/history over real HTTP: the Faust app's own web application (its views
and aiohttp dispatch) served in-process against the real broker, without a data plane. Auth is the
registry's roles model; the drop guard answers 409 unless `?force=true`; every publish is in the history."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from aiohttp import web as aioweb
from pydantic import SecretStr

from common.auth import RoleAuthenticator
from common.config import KafkaSettings, WorkerSettings
from refinery.control import route_views
from refinery.control.app import app
from refinery.control.route_records import os_user
from refinery.control.route_store import RouteWatcher, publish_route_set, read_route_log
from refinery.routing.rules import load_route_file, load_route_set
from tests.refinery.worker.worker_harness import WorkerProcess, worker_env
from tests.support import free_port, wait_for

pytestmark = pytest.mark.integration

WORKLOAD = load_route_file(Path(__file__).resolve().parents[3] / "refinery" / "routes" / "workload.yaml")
SMALL = "routes:\n  - {name: dev-all, match: {env: dev}, to: {topic: dev.all.all.all-v1}}\n"
USERS = {"reader": "r-pw-1", "writer": "w-pw-2", "boss": "b-pw-3"}
TOKEN = "tok-views-77"


def basic(user: str) -> dict[str, str]:
    raw = f"{user}:{USERS[user]}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


class ViewServer:
    """The app's aiohttp application on a free port, in a thread with its own event loop."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._runner = aioweb.AppRunner(app.web.web_app)
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> ViewServer:
        self._thread.start()

        async def serve() -> None:
            await self._runner.setup()
            await aioweb.TCPSite(self._runner, "127.0.0.1", self.port).start()

        asyncio.run_coroutine_threadsafe(serve(), self._loop).result(30)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture(scope="module")
def server() -> Iterator[ViewServer]:
    served = ViewServer().start()
    yield served
    served.stop()


@pytest.fixture
def topic(kafka_bootstrap: str, unique_name: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point the app at this test's routes topic and broker, with a watcher as the worker would have."""
    monkeypatch.setattr(app, "worker_settings", WorkerSettings(routes_topic=unique_name))
    monkeypatch.setattr(app, "kafka_settings", KafkaSettings(bootstrap_servers=kafka_bootstrap))
    monkeypatch.setattr(route_views, "AUTHENTICATOR", RoleAuthenticator([], []))
    with RouteWatcher({"bootstrap.servers": kafka_bootstrap}, unique_name) as watcher:
        monkeypatch.setattr(app, "routing", SimpleNamespace(watcher=watcher))
        yield unique_name


def auth_on(monkeypatch: pytest.MonkeyPatch) -> None:
    users = [SecretStr(f"reader:{USERS['reader']}:read"), SecretStr(f"writer:{USERS['writer']}:write"),
             SecretStr(f"boss:{USERS['boss']}:admin")]  # fmt: skip
    monkeypatch.setattr(route_views, "AUTHENTICATOR", RoleAuthenticator(users, [SecretStr(f"{TOKEN}:write")]))


def post(
    server: ViewServer, text: str, query: str = "", headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.post(f"{server.url}/routes{query}", content=text, headers=headers, timeout=60)


def test_auth_on_every_route_view_needs_the_right_role(
    server: ViewServer, topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth_on(monkeypatch)
    for path in ("/routes", "/routes/history"):
        anonymous = httpx.get(server.url + path, timeout=30)
        assert anonymous.status_code == 401 and anonymous.json() == {
            "error_code": 40101,
            "message": "Unauthorized: send valid basic or bearer credentials",
        }
        assert "Basic" in anonymous.headers["www-authenticate"]
        wrong = {"Authorization": "Basic " + base64.b64encode(b"boss:nope").decode()}
        assert httpx.get(server.url + path, headers=wrong, timeout=30).status_code == 401
        assert httpx.get(server.url + path, headers=basic("reader"), timeout=30).status_code == 200

    assert post(server, WORKLOAD.canonical_text).status_code == 401
    refused = post(server, WORKLOAD.canonical_text, headers=basic("reader"))
    assert refused.status_code == 403
    assert refused.json() == {"error_code": 40301, "message": "Forbidden: this needs the write role"}
    applied = post(server, WORKLOAD.canonical_text, headers={"Authorization": f"Bearer {TOKEN}"})
    assert applied.status_code == 200, applied.text
    assert applied.json()["who"].startswith("token:") and TOKEN not in applied.text
    # forcing past the drop guard is the admin's act
    forced = post(server, SMALL, "?force=true", headers=basic("writer"))
    assert forced.status_code == 403 and forced.json()["message"] == "Forbidden: this needs the admin role"
    assert read_route_log(app.kafka_settings.client_config(), topic).live.route_set == WORKLOAD  # type: ignore[union-attr]
    forced = post(server, SMALL, "?force=true", headers=basic("boss"))
    assert forced.status_code == 200 and forced.json()["forced"] is True and forced.json()["who"] == "boss"
    history = httpx.get(f"{server.url}/routes/history", headers=basic("reader"), timeout=30).json()
    assert [(h["who"], h["forced"]) for h in history["history"]] == [
        ("boss", True),
        (applied.json()["who"], False),
    ]


def test_drastic_drops_answer_409_until_forced(server: ViewServer, topic: str) -> None:
    empty = post(server, '{"routes": []}')  # the measured incident: JSON, empty, no credentials
    assert empty.status_code == 409
    assert empty.json() == {
        "error_code": 40901,
        "message": "the route set has no routes: every record would go unmatched; "
        "pass ?force=true to apply it anyway",
    }
    assert read_route_log(app.kafka_settings.client_config(), topic).live is None
    assert post(server, WORKLOAD.canonical_text).status_code == 200
    app.routing.watcher.wait_for_version(WORKLOAD.version, 20)
    drop = post(server, SMALL)
    assert drop.status_code == 409 and drop.json()["error_code"] == 40901
    assert drop.json()["message"].startswith("the route set would drop 8 of the 8 live routes (")
    assert drop.json()["message"].endswith("; pass ?force=true to apply it anyway")
    emptied = post(server, '{"routes": []}')
    assert "it would drop all 8 live routes" in emptied.json()["message"]
    assert httpx.get(f"{server.url}/routes", timeout=30).json()["version"] == WORKLOAD.version
    assert post(server, SMALL, "?force=maybe").status_code == 422
    forced = post(server, SMALL, "?force=true")
    assert forced.status_code == 200, forced.text
    body = forced.json()
    assert body["version"] == load_route_set(SMALL).version and body["forced"] is True
    assert body["who"].startswith("anonymous") and body["diff"]["added"] == ["dev-all"]
    assert body["diff"]["removed"] == WORKLOAD.route_names()
    # a guarded change within the rules needs no flag and is not marked forced
    grown = SMALL + "  - {name: dev-more, match: {env: dev}, to: {topic: dev.more.all.all-v1}}\n"
    assert post(server, grown).json()["forced"] is False


def test_history_lists_every_publish_newest_first(
    server: ViewServer, topic: str, kafka_bootstrap: str
) -> None:
    assert httpx.get(f"{server.url}/routes/history", timeout=30).json() == {"live": None, "history": []}
    publish_route_set({"bootstrap.servers": kafka_bootstrap}, topic, load_route_set(SMALL), who="seed")
    # replacing a one-route set drops all of it: 409, then forced
    assert post(server, WORKLOAD.canonical_text).status_code == 409
    assert post(server, WORKLOAD.canonical_text, "?force=true").status_code == 200
    history = httpx.get(f"{server.url}/routes/history", timeout=30).json()
    assert history["live"] == WORKLOAD.version
    assert [(h["version"], h["route_count"]) for h in history["history"]] == [
        (WORKLOAD.version, 8),
        (load_route_set(SMALL).version, 1),
    ]
    assert [(h["who"], h["forced"]) for h in history["history"]][1:] == [("seed", False)]
    assert history["history"][0]["forced"] is True
    assert history["history"][0]["when"] > history["history"][1]["when"]
    app.routing.watcher.wait_for_version(WORKLOAD.version, 20)
    live = httpx.get(f"{server.url}/routes", timeout=30).json()
    assert live["published"] == {"who": history["history"][0]["who"], "when": history["history"][0]["when"]}


def test_invalid_sets_are_still_422(server: ViewServer, topic: str) -> None:
    bad = post(server, "routes:\n  - name: x\n    match: {nosuchfield: 1}\n    to: {topic: prod.a.b.c-v1}\n")
    assert bad.status_code == 422 and bad.json()["error_code"] == 42201 and "nosuchfield" in bad.text


def test_a_real_worker_reads_its_auth_settings(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    users = [
        f"reader:{USERS['reader']}:read",
        f"writer:{USERS['writer']}:write",
        f"boss:{USERS['boss']}:admin",
    ]
    env = worker_env(kafka_bootstrap, unique_name, tmp_path, auth_users=json.dumps(users))
    env["REFINERY_LOG_LEVEL"] = "DEBUG"
    publish_route_set({"bootstrap.servers": kafka_bootstrap}, env["REFINERY_WORKER_ROUTES_TOPIC"], WORKLOAD)
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        assert worker.get("/routes").status_code == 401
        assert worker.get("/stats").status_code == 200  # status views stay open
        empty = httpx.post(
            f"{worker.url}/routes", content='{"routes": []}', headers=basic("writer"), timeout=60
        )
        assert empty.status_code == 409 and "drop all 8 live routes" in empty.json()["message"]
        forced = httpx.post(
            f"{worker.url}/routes?force=true", content=SMALL, headers=basic("boss"), timeout=60
        )
        assert forced.status_code == 200, forced.text
        wait_for(
            lambda: (
                httpx.get(f"{worker.url}/routes", headers=basic("reader"), timeout=10).json()["version"]
                == forced.json()["version"]
            ),
            what="the forced set in force",
        )
        history = httpx.get(f"{worker.url}/routes/history", headers=basic("reader"), timeout=30).json()
        assert [(h["who"], h["forced"]) for h in history["history"]] == [
            ("boss", True),
            (f"python:{os_user()}", False),
        ]
    finally:
        worker.stop()
    log = worker.log_path.read_text(errors="replace")
    for secret in USERS.values():
        assert secret not in log
