"""The services' OpenAPI docs work offline (issue 17: the registry's /docs was blank without a CDN): every
URL the Swagger UI and ReDoc pages load is the service's own, and is served; a headless Chromium shows
Swagger UI rendering the registry's operations from those assets alone."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from common.docs_ui import install_docs
from gateway.app import create_app as gateway_app
from refinery.catalog.app import create_app as catalog_app
from schema_registry.app import create_app as registry_app
from tests.browser import chromium_or_skip, dump_dom

REFERENCE = re.compile(r"""(?:src|href|spec-url)=["']([^"']+)["']|url: ["']([^"']+)["']""")

# each service's app, built without starting it (no Kafka needed to serve the docs)
SERVICES: dict[str, Callable[[], FastAPI]] = {
    "registry": registry_app,
    "gateway": gateway_app,
    "catalog": lambda: catalog_app(observe=False),
}


def references(html: str) -> list[str]:
    return [a or b for a, b in REFERENCE.findall(html)]


@pytest.mark.parametrize("service", sorted(SERVICES))
@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_the_services_own_assets(service: str, page: str) -> None:
    client = TestClient(SERVICES[service]())
    html = client.get(page)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    urls = references(html.text)
    assert len(urls) >= 3, html.text  # script, favicon and the OpenAPI document (+ CSS for Swagger UI)
    assert "http://" not in html.text and "https://" not in html.text and "cdn" not in html.text.lower()
    for url in urls:
        assert url.startswith("/"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        if url.endswith(".js"):
            assert len(asset.content) > 500_000 and "javascript" in asset.headers["content-type"], url
        elif url.endswith(".css"):
            assert len(asset.content) > 50_000 and asset.headers["content-type"].startswith("text/css"), url
    assert "openapi" in client.get("/openapi.json").json()


def test_an_app_with_fastapis_cdn_pages_is_refused() -> None:
    with pytest.raises(ValueError, match="docs_url=None"):
        install_docs(FastAPI())


@pytest.mark.integration
def test_swagger_ui_renders_the_registrys_operations_in_headless_chromium(registry_url: str) -> None:
    chromium = chromium_or_skip("the Swagger UI rendering test")
    dom = dump_dom(chromium, f"{registry_url}/docs")
    assert "swagger-ui" in dom and "opblock" in dom, dom[:2000]  # Swagger UI built the operation blocks
    for path in ("/subjects/{subject}/versions", "/schemas/ids/{schema_id}", "/contexts", "/config"):
        assert f'data-path="{path}"' in dom, path
    assert len(re.findall(r'class="opblock opblock-', dom)) >= 20  # every operation, not a stub
