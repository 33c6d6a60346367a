"""Optional auth: basic users and bearer tokens with read < write < admin roles."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.schema_registry.processes import RegistryProcess

pytestmark = pytest.mark.integration

SCHEMA = json.dumps({"type": "record", "name": "Secret", "fields": [{"name": "x", "type": "int"}]})


def test_roles_and_secrets_stay_out_of_logs(kafka_bootstrap: str, unique_name: str, tmp_path: Path) -> None:
    env = {
        "REFINERY_REGISTRY_AUTH_USERS": json.dumps(["reader:pw-r-9871:read", "boss:pw-b-5531:admin"]),
        "REFINERY_REGISTRY_AUTH_TOKENS": json.dumps(["tok-w-4410:write"]),
        "REFINERY_LOG_LEVEL": "DEBUG",
    }
    log_path = tmp_path / "registry.log"
    registry = RegistryProcess(kafka_bootstrap, f"_schemas_{unique_name}", log_path=log_path, env=env).start()
    try:
        url = registry.url
        body = {"schema": SCHEMA}
        anonymous = httpx.get(f"{url}/subjects")
        assert anonymous.status_code == 401 and anonymous.json()["error_code"] == 40101
        assert "Basic" in anonymous.headers["www-authenticate"]
        assert httpx.get(f"{url}/subjects", auth=("reader", "wrong")).status_code == 401
        assert httpx.get(f"{url}/subjects", auth=("reader", "pw-r-9871")).status_code == 200
        refused = httpx.post(f"{url}/subjects/s/versions", json=body, auth=("reader", "pw-r-9871"))
        assert refused.status_code == 403 and refused.json()["error_code"] == 40301

        writer = {"Authorization": "Bearer tok-w-4410"}
        assert httpx.post(f"{url}/subjects/s/versions", json=body, headers=writer).status_code == 200
        assert httpx.post(f"{url}/subjects/s", json=body, auth=("reader", "pw-r-9871")).status_code == 200
        assert httpx.put(f"{url}/config", json={"compatibility": "NONE"}, headers=writer).status_code == 403
        assert (
            httpx.put(f"{url}/config", json={"compatibility": "NONE"}, auth=("boss", "pw-b-5531")).status_code
            == 200
        )
        assert httpx.get(f"{url}/metrics").status_code == 200  # scrapes need no credentials
        for page in ("/docs", "/docs/assets/swagger-ui-bundle.js", "/redoc", "/openapi.json"):
            assert httpx.get(url + page).status_code == 200, page  # the docs and their assets are open
        # contexts follow the same roles: listing reads, deleting writes
        assert httpx.get(f"{url}/contexts").status_code == 401
        assert httpx.get(f"{url}/contexts", auth=("reader", "pw-r-9871")).json() == ["."]
        assert httpx.delete(f"{url}/contexts/.c", auth=("reader", "pw-r-9871")).status_code == 403
        assert httpx.delete(f"{url}/contexts/.c", headers=writer).status_code == 204
    finally:
        registry.stop()
    log_text = log_path.read_text()
    assert "schema registry ready" in log_text
    for secret in ("pw-r-9871", "pw-b-5531", "tok-w-4410"):
        assert secret not in log_text
