"""Registry auth on a real registry process: every route of the app (enumerated from the app itself, so a
new mutating endpoint without a check fails here) needs credentials, mutations need `write`, config and
mode changes need `admin`; passwords and tokens never reach the log."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from starlette.routing import BaseRoute

from common.config import RegistrySettings
from common.errors import RegistryAccessError
from producers.schemas import SchemaCatalog
from refinery.control.route_store import publish_route_set
from refinery.routing.rules import load_route_set
from refinery.routing.schema_check import SchemaIdChecker
from schema_registry.app import create_app
from tests.refinery.worker.worker_harness import WorkerProcess, record, send, worker_env
from tests.reliability.figures import record_figures
from tests.schema_registry.processes import RegistryProcess
from tests.support import consume_all, wait_for

pytestmark = pytest.mark.integration

SECRETS = {"reader": "r3ad-Pw-9f2c", "writer": "wr1te-Pw-77aa", "admin": "adm1n-Pw-c0de"}
TOKEN = "tok-5e1f-admin-0b9d"
MUTATING = {"POST", "PUT", "DELETE", "PATCH"}
# POSTs that only read (Confluent's API shape): lookup of a schema under a subject, compatibility checks.
READ_ONLY_POSTS = {
    "/subjects/{subject}",
    "/compatibility/subjects/{subject}/versions",
    "/compatibility/subjects/{subject}/versions/{version}",
}
ADMIN_PREFIXES = ("/config", "/mode")
AUTH_ROUTES = """
routes:
  - name: all
    match: {}
    to: {template: "{env}.{source}.{title}.{category}-v{version}"}
"""
OPEN = {"/health", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


def app_routes(routes: list[BaseRoute]) -> Iterator[tuple[str, str]]:
    """(method, path) of every route, walking included routers too (hidden routes included)."""
    for route in routes:
        path, methods = getattr(route, "path", None), getattr(route, "methods", None)
        if path is not None and methods:
            for method in methods - {"HEAD"}:
                yield method, path
        inner = getattr(route, "original_router", None) or getattr(route, "app", None)
        if inner is not None and hasattr(inner, "routes"):
            yield from app_routes(inner.routes)


def basic(user: str) -> dict[str, str]:
    raw = f"{user}:{SECRETS[user]}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


class SecuredRegistry(RegistryProcess):
    """A registry with auth on: `/subjects` answering 401 means it is up."""

    def wait_ready(self, *, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, (
                f"registry exited; log: {self.log_path}"
            )
            try:
                if httpx.get(f"{self.url}/subjects", timeout=2).status_code == 401:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"registry with auth not up on {self.url}; log: {self.log_path}")


@pytest.fixture(scope="module")
def secured(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    log_path = tmp_path_factory.mktemp("auth") / "registry.log"
    users = [f"reader:{SECRETS['reader']}:read", f"writer:{SECRETS['writer']}:write",
             f"admin:{SECRETS['admin']}:admin"]  # fmt: skip
    env = {
        "REFINERY_REGISTRY_AUTH_USERS": json.dumps(users),
        "REFINERY_REGISTRY_AUTH_TOKENS": json.dumps([f"{TOKEN}:admin"]),
        "REFINERY_LOG_LEVEL": "DEBUG",
    }
    topic = f"_schemas_auth_{uuid.uuid4().hex[:10]}"
    registry = SecuredRegistry(kafka_bootstrap, topic, log_path=log_path, env=env).start()
    yield registry
    registry.stop()


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: {"subject": "auth-subject"}.get(m[1], "1"), path)


def test_every_route_needs_the_right_role(secured: RegistryProcess) -> None:
    app = create_app(RegistrySettings())  # not started: we only read its routes
    routes = sorted(set(app_routes(list(app.routes))))
    mutating = [(m, p) for m, p in routes if m in MUTATING and not (m == "POST" and p in READ_ONLY_POSTS)]
    assert len(mutating) >= 8, routes  # the enumeration really found the API
    body = {"schema": json.dumps({"type": "string"}), "compatibility": "NONE", "mode": "READWRITE"}

    def call(method: str, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        content = json.dumps(body) if method in ("POST", "PUT") else None
        return httpx.request(
            method, secured.url + concrete(path), content=content, headers=headers, timeout=30
        )

    checked = 0
    for method, path in routes:
        if path in OPEN or path == "/":
            continue
        anonymous = call(method, path)
        assert anonymous.status_code == 401, (method, path)
        assert anonymous.json()["error_code"] == 40101 and "credentials" in anonymous.json()["message"]
        wrong = call(method, path, {"Authorization": "Basic " + base64.b64encode(b"admin:nope").decode()})
        assert wrong.status_code == 401, (method, path)
        needs = "read"
        if (method, path) in mutating:
            needs = "admin" if path.startswith(ADMIN_PREFIXES) else "write"
        for user in ("reader", "writer", "admin"):
            response = call(method, path, basic(user))
            allowed = ["reader", "writer", "admin"].index(user) >= ["read", "write", "admin"].index(needs)
            if allowed:
                assert response.status_code not in (401, 403), (method, path, user, response.text)
            else:
                assert response.status_code == 403, (method, path, user)
                assert response.json() == {
                    "error_code": 40301,
                    "message": f"Forbidden: this needs the {needs} role",
                }
        bearer = call(method, path, {"Authorization": f"Bearer {TOKEN}"})
        assert bearer.status_code not in (401, 403), (method, path)
        checked += 1
    record_figures("registry_auth", routes_checked=checked, mutating_routes=len(mutating))


def test_secrets_never_reach_the_log(secured: RegistryProcess) -> None:
    # exercise success and failure paths with every secret on the wire (DEBUG logging is on)
    httpx.post(
        f"{secured.url}/subjects/leak-check/versions", json={"schema": '"string"'}, headers=basic("writer")
    )
    httpx.get(f"{secured.url}/subjects", headers={"Authorization": f"Bearer {TOKEN}"})
    httpx.get(f"{secured.url}/subjects", headers={"Authorization": f"Bearer {TOKEN}x"})
    for user in SECRETS:
        httpx.put(f"{secured.url}/config", json={"compatibility": "BACKWARD"}, headers=basic(user))
    assert secured.log_path is not None
    log = Path(secured.log_path).read_text(errors="replace")
    assert "leak-check" in log or len(log) > 200, "the log should have something in it"
    encoded = [base64.b64encode(f"{u}:{p}".encode()).decode() for u, p in SECRETS.items()]
    for secret in [*SECRETS.values(), TOKEN, *encoded]:
        assert secret not in log


def test_the_worker_schema_check_uses_credentials_and_fails_closed(secured: RegistryProcess) -> None:
    registered = httpx.post(f"{secured.url}/subjects/checker-auth-value/versions",
                            json={"schema": '"string"'}, headers=basic("writer"), timeout=30)  # fmt: skip
    assert registered.status_code == 200, registered.text
    schema_id = str(registered.json()["id"]).encode()

    def checker(username: str | None, password: str | None) -> SchemaIdChecker:
        secret = SecretStr(password) if password is not None else None
        settings = RegistrySettings(url=secured.url, username=username, password=secret)
        return SchemaIdChecker.from_settings(settings, negative_ttl_s=1)

    reader = checker("reader", SECRETS["reader"])
    assert reader.known(schema_id)
    assert not reader.known(b"987654321")  # a real "not found" with credentials that work
    for refused in (checker("reader", "not-the-password"), checker(None, None)):
        with pytest.raises(RegistryAccessError) as caught:
            refused.known(schema_id)
        assert secured.url in str(caught.value) and "HTTP 401" in str(caught.value)
        assert SECRETS["reader"] not in str(caught.value) and "not-the-password" not in str(caught.value)
        assert refused.unreachable == 0  # a refusal is not an outage: nothing was let through


@pytest.mark.parametrize("password", [SECRETS["reader"], "not-the-password"])
def test_a_worker_with_wrong_registry_credentials_pauses_instead_of_routing(
    secured: RegistryProcess, kafka_bootstrap: str, tmp_path: Path, password: str
) -> None:
    """The worker's schema check with the registry's credentials routes; with a wrong password it fails
    closed: it pauses (`registry_denied`, /ready 503 saying why) and neither routes nor dead-letters."""
    registered = httpx.post(f"{secured.url}/subjects/worker-auth-value/versions",
                            json={"schema": '"string"'}, headers=basic("writer"), timeout=30)  # fmt: skip
    schema_id = int(registered.json()["id"])
    name = f"t_wauth_{uuid.uuid4().hex[:8]}"
    env = worker_env(kafka_bootstrap, name, tmp_path, registry_check=True)
    env.update({"REFINERY_REGISTRY_URL": secured.url, "REFINERY_REGISTRY_USERNAME": "reader",
                "REFINERY_REGISTRY_PASSWORD": password})  # fmt: skip
    publish_route_set({"bootstrap.servers": kafka_bootstrap}, env["REFINERY_WORKER_ROUTES_TOPIC"],
                      load_route_set(AUTH_ROUTES))  # fmt: skip
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        value, headers = record("prod", name, "1234", "login", schema_id=schema_id)
        send(kafka_bootstrap, f"prod.{name}.ingest.all-v1", [(b"k", value, headers)])
        if password == SECRETS["reader"]:
            routed = consume_all(kafka_bootstrap, [f"prod.{name}.1234.login-v1"], expected=1, timeout=30)
            assert len(routed) == 1
            return
        ready = wait_for(lambda: (r := worker.get("/ready")).status_code == 503
                         and "registry_denied" in r.text and r,
                         timeout=30, what="worker paused on the registry's refusal")  # fmt: skip
        assert ready.json()["error_code"] == 50301 and "HTTP 401" in ready.json()["message"]
        stats = worker.stats()
        assert stats["state"] == "paused" and stats["paused_reason"] == "registry_denied"
        assert password not in ready.text and password not in (tmp_path / "worker.log").read_text()
        time.sleep(3)  # still holding: nothing routed, nothing dead-lettered
        assert stats["totals"]["routed"] == 0 and worker.stats()["totals"]["dlq"] == 0
        denied = re.search(r"^refinery_registry_denied_total (\S+)$", worker.get("/metrics").text, re.M)
        assert denied is not None and float(denied[1]) >= 1
    finally:
        worker.stop()


def test_the_sdk_names_refused_credentials_instead_of_a_raw_client_error(secured: RegistryProcess) -> None:
    """The SDK's registry calls with wrong or missing credentials raise RegistryAccessError naming the
    registry, the status and the settings to fix (not confluent's SchemaRegistryError, not "not
    registered"); with the right credentials the same calls work."""
    schema = json.dumps({"type": "record", "name": "SdkAuth", "fields": [{"name": "n", "type": "int"}]})

    def catalog(username: str | None, password: str | None) -> SchemaCatalog:
        secret = SecretStr(password) if password is not None else None
        return SchemaCatalog.from_settings(
            RegistrySettings(url=secured.url, username=username, password=secret)
        )

    writer = catalog("writer", SECRETS["writer"])
    registered = writer.register("9911", "sdk_auth", schema, "AVRO", version=1)
    assert writer.resolve("9911", "sdk_auth", 1).schema_id == registered.schema_id
    for refused in (catalog("writer", "not-the-password"), catalog(None, None)):
        for call in (lambda c: c.resolve("9911", "sdk_auth", 1), lambda c: c.by_id(registered.schema_id),
                     lambda c: c.register("9911", "sdk_auth", schema, "AVRO")):  # fmt: skip
            with pytest.raises(RegistryAccessError) as caught:
                call(refused)
            message = str(caught.value)
            assert message.startswith(f"schema registry at {secured.url} refused our credentials while ")
            assert "HTTP 401" in message and "REFINERY_REGISTRY_USERNAME" in message
            assert "not-the-password" not in message
    reader = catalog("reader", SECRETS["reader"])  # a role too weak to register: 403, same error
    with pytest.raises(RegistryAccessError, match="HTTP 403"):
        reader.register("9911", "sdk_auth_2", schema, "AVRO")
