"""One OpenAPI document for the whole public API, merged from the services' own documents.

Each service serves its document at `/internal/openapi.json`. The gateway keeps only the paths it
routes to that service (public paths), merges the component schemas (a name two services use for
different shapes is prefixed with the service's name), adds its own routes (token, me, audit), the
bearer security scheme, the problem responses every forwarded call can give (401, 403, 404, 413,
422, 429, 502, 503, 504) and examples; `openapi_polish` adds tags, servers, contact, short operation
ids and descriptions. The result is cached; while a service is missing, the next request after `retry_s`
tries it again. `router` serves it at `/api/v1/openapi.json` (the app keeps its `MergedDocument` on
`app.state.document`); `gateway.console` serves the `/docs` page over it.
"""
from __future__ import annotations

import asyncio
import copy
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from gateway.openapi_polish import polish
from gateway.routes import service_of

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)

Fetch = Callable[[str], Awaitable[dict]]
METHODS = ("get", "put", "post", "delete", "patch")
REF = "#/components/schemas/"

PROBLEM_SCHEMA = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details: every error the API gives.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object", "properties": {
            "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
            "msg": {"type": "string"}}}},
    },
    "additionalProperties": True,
    "example": {"type": "https://jiaozhi.dev/problems/not-found", "title": "Not found", "status": 404,
                "detail": "incident 9f2c… does not exist", "instance": "/api/v1/incidents/9f2c…"},
}

_GATEWAY_PROBLEMS = {
    "401": ("Not authenticated: missing, expired or invalid bearer token", "unauthorized"),
    "403": ("The caller's role may not do this", "forbidden"),
    "404": ("No such object within the caller's jurisdiction", "not-found"),
    "413": ("Body larger than the gateway accepts", "payload-too-large"),
    "422": ("Invalid input (including a page size above the maximum)", "validation"),
    "429": ("Rate limit exceeded; see Retry-After", "too-many-requests"),
    "502": ("The service gave no valid answer", "bad-gateway"),
    "503": ("The service is unavailable; see Retry-After", "upstream-unavailable"),
    "504": ("The service did not answer in time", "upstream-timeout"),
}


def _problem_response(status: str, description: str, kind: str) -> dict:
    example = {"type": f"https://jiaozhi.dev/problems/{kind}", "title": kind.replace("-", " ").capitalize(),
               "status": int(status), "detail": description}
    content = {"application/problem+json": {"schema": {"$ref": REF + "Problem"}, "example": example}}
    response: dict[str, Any] = {"description": description, "content": content}
    if status in ("429", "503"):
        response["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}
    if status == "401":
        response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    return response


def _rename_refs(node: Any, renames: dict[str, str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(REF) and value[len(REF):] in renames:
                out[key] = REF + renames[value[len(REF):]]
            else:
                out[key] = _rename_refs(value, renames)
        return out
    if isinstance(node, list):
        return [_rename_refs(v, renames) for v in node]
    return node


def _example_path(template: str) -> str:
    """A concrete path for a template (`/stations/{id}/score` → `/stations/x/score`) to ask the router."""
    import re

    return re.sub(r"\{[^}]+\}", "x", template)


def merge(gateway_doc: dict, service_docs: dict[str, dict]) -> dict:
    """The public document: the gateway's own paths plus each service's public paths and schemas."""
    doc = copy.deepcopy(gateway_doc)
    doc["openapi"] = doc.get("openapi", "3.1.0")
    paths: dict[str, Any] = doc.setdefault("paths", {})
    schemas: dict[str, Any] = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    owners = dict.fromkeys(paths, "gateway")
    for name, service_doc in sorted(service_docs.items()):
        own_schemas = service_doc.get("components", {}).get("schemas", {})
        renames = {}
        for schema_name, schema in own_schemas.items():
            if schema_name in schemas and schemas[schema_name] != schema:
                renames[schema_name] = f"{name.capitalize()}{schema_name}"
        for schema_name, schema in own_schemas.items():
            renamed = _rename_refs(schema, renames)
            if schema_name in renames:  # generators name models by title: keep it unique too
                renamed = {**renamed, "title": renames[schema_name]}
            schemas[renames.get(schema_name, schema_name)] = renamed
        for path, item in service_doc.get("paths", {}).items():
            if not path.startswith("/api/v1/") or service_of(_example_path(path)) != name:
                continue  # internal, or routed elsewhere by the gateway: not public
            paths[path] = _rename_refs(item, renames)
            owners[path] = name
    doc["components"].setdefault("securitySchemes", {})["bearer"] = {
        "type": "oauth2", "description": "Bearer token from POST /api/v1/auth/token",
        "flows": {"password": {"tokenUrl": "/api/v1/auth/token", "scopes": {}},
                  "clientCredentials": {"tokenUrl": "/api/v1/auth/token", "scopes": {}}}}
    for path, item in paths.items():
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            if path == "/api/v1/auth/token":
                for status in ("401", "429"):
                    responses.setdefault(status, _problem_response(status, *_GATEWAY_PROBLEMS[status]))
                responses["422"] = _problem_response("422", *_GATEWAY_PROBLEMS["422"])
                continue
            operation["security"] = [{"bearer": []}]
            for status, (description, kind) in _GATEWAY_PROBLEMS.items():
                if status == "413" and method not in ("post", "put", "patch"):
                    continue
                if status == "422":  # FastAPI's own 422 schema (HTTPValidationError) is replaced: we answer problems
                    responses[status] = _problem_response(status, description, kind)
                    continue
                responses.setdefault(status, _problem_response(status, description, kind))
    for unused in ("HTTPValidationError", "ValidationError"):
        if unused in schemas and unused not in json.dumps(doc["paths"]):
            schemas.pop(unused)
    return polish(doc, owners)


class MergedDocument:
    """The cached merged document; services that were away are fetched again after `retry_s`."""

    def __init__(self, gateway_doc: Callable[[], dict], fetch: Fetch, services: tuple[str, ...], *,
                 retry_s: float = 5.0) -> None:
        self.gateway_doc = gateway_doc
        self.fetch = fetch
        self.services = services
        self.retry_s = retry_s
        self._docs: dict[str, dict] = {}
        self._merged: dict | None = None
        self._missing_since: float | None = None
        self._lock = asyncio.Lock()

    @property
    def missing(self) -> list[str]:
        """Services whose document the gateway does not have yet."""
        return [s for s in self.services if s not in self._docs]

    async def get(self) -> dict:
        """The merged document (fetching services that are missing, at most every `retry_s`)."""
        async with self._lock:
            due = self._missing_since is None or time.monotonic() - self._missing_since >= self.retry_s
            if self._merged is None or (self.missing and due):
                await self._refresh()
            assert self._merged is not None
            return self._merged

    async def _refresh(self) -> None:
        async def one(name: str) -> None:
            try:
                self._docs[name] = await self.fetch(name)
            except Exception as exc:  # noqa: BLE001 - a service away: its paths come later
                log.warning("no OpenAPI document from %s yet (%s)", name, type(exc).__name__)

        await asyncio.gather(*(one(name) for name in self.missing))
        self._missing_since = time.monotonic() if self.missing else None
        merged = merge(self.gateway_doc(), self._docs)
        if self.missing:
            merged["info"]["x-missing-services"] = self.missing
        self._merged = merged


@router.get("/api/v1/openapi.json")
async def openapi_document(request: Request) -> JSONResponse:
    """The merged document."""
    document: MergedDocument = request.app.state.document
    return JSONResponse(await document.get())

