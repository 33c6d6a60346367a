"""OpenAPI docs pages whose Swagger UI and ReDoc assets the service serves itself, never from a CDN.

FastAPI's own `/docs` and `/redoc` load their JavaScript and CSS from jsDelivr (and ReDoc its fonts from
Google), so they are blank offline or behind a firewall. `install_docs` puts the same pages on an app,
made with `docs_url=None, redoc_url=None`, with every asset under `/docs/assets/` taken from the
`fastapi-offline` package (Swagger UI 5 and ReDoc, kept up to date by that package; a dependency of
ours). The registry, the gateway and the catalog all use it.

It lives in `common` because those three are separate packages that must not import each other, and
`common` is the one package every service imports (it already holds other shared service plumbing:
`auth`, `kafka_admin`, `kafka_log`); a package of its own would need its own packaging and image line
for a few dozen lines.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"
ASSETS_PATH = "/docs/assets"
SWAGGER_JS = "swagger-ui-bundle.js"
SWAGGER_CSS = "swagger-ui.css"
REDOC_JS = "redoc.standalone.js"
FAVICON = "favicon.png"


def install_docs(
    app: FastAPI, *, docs_url: str = "/docs", redoc_url: str | None = "/redoc", assets_path: str = ASSETS_PATH
) -> None:
    """Serve Swagger UI at `docs_url` and ReDoc at `redoc_url` with local assets. The app must have been
    created with `docs_url=None, redoc_url=None` (else FastAPI's CDN pages answer first)."""
    if app.docs_url is not None or app.redoc_url is not None:
        raise ValueError("create the app with docs_url=None and redoc_url=None before install_docs")
    openapi_url = app.openapi_url or "/openapi.json"
    oauth2_redirect_url = app.swagger_ui_oauth2_redirect_url or f"{docs_url}/oauth2-redirect"
    app.mount(assets_path, StaticFiles(directory=ASSETS_DIR), name="docs-assets")

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{assets_path}/{SWAGGER_JS}",
            swagger_css_url=f"{root}{assets_path}/{SWAGGER_CSS}",
            swagger_favicon_url=f"{root}{assets_path}/{FAVICON}",
            oauth2_redirect_url=root + oauth2_redirect_url,
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    @app.get(oauth2_redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    if redoc_url is None:
        return

    @app.get(redoc_url, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{assets_path}/{REDOC_JS}",
            redoc_favicon_url=f"{root}{assets_path}/{FAVICON}",
            with_google_fonts=False,
        )
