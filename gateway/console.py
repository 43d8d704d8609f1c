"""The web console and the API docs page, served as static files shipped in the package (no CDN, no build step).

`/` is the console's page, `/console/…` its modules, styles and vendored libraries (gateway/console/vendor,
each with its licence), `/docs` Swagger UI over the merged document from the same vendored files. Every
answer carries a strict Content-Security-Policy: scripts only from this origin, no inline script, no eval.
The files are read once when the app is built and answered from memory with an ETag (a reload costs 304s).
"""
from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request, Response

from shared.errors import NotFound

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


MEDIA = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".png": "image/png", ".md": "text/markdown; charset=utf-8"}


@dataclass(frozen=True)
class Asset:
    """One file of the console, held in memory with its validator."""

    body: bytes
    media_type: str
    etag: str


def load_assets(root: Path = CONSOLE_DIR) -> dict[str, Asset]:
    """Every file under the console's folder by its path there (`js/main.js`), read once at start.

    In memory rather than from disk per request: a page load asks for a dozen modules at once, and a
    file read per request goes through the thread pool, which a busy gateway has little of.
    """
    assets = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        body = path.read_bytes()
        media = MEDIA.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        assets[path.relative_to(root).as_posix()] = Asset(body, media, f'"{hashlib.sha256(body).hexdigest()[:32]}"')
    return assets


def _answer(request: Request, asset: Asset, csp: str) -> Response:
    headers = {**_headers(csp), "etag": asset.etag}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


def install(app: FastAPI) -> None:
    """Serve the console at `/` (assets under `/console/`) and Swagger UI at `/docs`, all from the package."""

    assets = load_assets()

    @app.get("/", include_in_schema=False)
    async def console_page(request: Request) -> Response:
        """The console (a single page; its screens are client-side routes after `#`)."""
        return _answer(request, assets["index.html"], CSP)

    @app.get("/docs", include_in_schema=False)
    async def docs_page(request: Request) -> Response:
        """Swagger UI over `/api/v1/openapi.json`, its assets served locally (works on an isolated network)."""
        return _answer(request, assets["docs.html"], DOCS_CSP)

    @app.get("/console/{path:path}", include_in_schema=False)
    async def console_file(path: str, request: Request) -> Response:
        """The console's modules, style sheet and vendored libraries."""
        asset = assets.get(path)
        if asset is None:
            raise NotFound(f"no console file {path}")
        return _answer(request, asset, DOCS_CSP if path.startswith("vendor/swagger-ui/") else CSP)
