"""The web console and the API docs page, served as static files shipped in the package (no CDN, no build step).

`/` is the console's page, `/console/…` its modules, styles and vendored libraries (gateway/console/vendor,
each with its licence), `/docs` Swagger UI over the merged document from the same vendored files. Every
answer carries a strict Content-Security-Policy: scripts only from this origin, no inline script, no eval.
"""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

CONSOLE_DIR = Path(__file__).parent / "console"

CSP = "; ".join((
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",  # ECharts' "save as image" and Swagger UI's icons are data: URLs
    "font-src 'self'",
    "connect-src 'self'",
    "manifest-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "object-src 'none'",
))
# Swagger UI (React) writes a few style attributes from its JS: the docs page alone allows inline styles
DOCS_CSP = CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cache-control": "no-cache",  # revalidate (ETag): a new release is seen at once, an unchanged file costs a 304
}


def _headers(csp: str) -> dict[str, str]:
    return {"content-security-policy": csp, **SECURITY_HEADERS}


class ConsoleFiles(StaticFiles):
    """Static files with the console's security headers on every answer (404s included)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        csp = DOCS_CSP if "/vendor/swagger-ui/" in scope.get("path", "") else CSP
        extra = [(k.encode(), v.encode()) for k, v in _headers(csp).items()]

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await super().__call__(scope, receive, send_with_headers)


def install(app: FastAPI) -> None:
    """Serve the console at `/` (assets under `/console/`) and Swagger UI at `/docs`, all from the package."""

    @app.get("/", include_in_schema=False)
    async def console_page() -> FileResponse:
        """The console (a single page; its screens are client-side routes after `#`)."""
        return FileResponse(CONSOLE_DIR / "index.html", headers=_headers(CSP))

    @app.get("/docs", include_in_schema=False)
    async def docs_page() -> FileResponse:
        """Swagger UI over `/api/v1/openapi.json`, its assets served locally (works on an isolated network)."""
        return FileResponse(CONSOLE_DIR / "docs.html", headers=_headers(DOCS_CSP))

    app.mount("/console", ConsoleFiles(directory=CONSOLE_DIR), name="console")
