"""Limits and failures at the gateway: rate limit (429 + Retry-After), page size (422), jurisdiction in paths and
filters (404), slow, broken and dead upstreams (504/502/503), server-sent events relayed, writes audited."""
from __future__ import annotations

import asyncio
import socket
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from deploy.natsd import free_port
from gateway.app import create_app
from gateway.config import GatewaySettings
from gateway.limits import RateLimiter, retry_after
from shared.auth import Identity, issue_token
from tests.helpers import assert_problem, eventually, serving


def _upstream() -> FastAPI:
    app = FastAPI()

    @app.get("/api/v1/slow")
    async def slow() -> dict:
        await asyncio.sleep(3)
        return {}

    @app.get("/api/v1/events")
    async def events() -> StreamingResponse:
        async def frames() -> AsyncIterator[bytes]:
            for i in range(3):
                yield f"data: {i}\n\n".encode()
                await asyncio.sleep(0.05)

        return StreamingResponse(frames(), media_type="text/event-stream")

    @app.api_route("/{path:path}", methods=["GET", "POST"])
    async def echo(path: str, request: Request) -> JSONResponse:
        return JSONResponse({"path": request.url.path, "query": request.url.query}, status_code=201
                            if request.method == "POST" else 200)

    return app


@pytest.fixture(scope="module")
def upstream_url() -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(_upstream(), host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def garbage_url() -> Iterator[str]:
    """An upstream that answers every request with bytes that are not HTTP."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    stop = threading.Event()

    def serve() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                conn.sendall(b"this is not http\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    stop.set()
    thread.join(timeout=5)
    sock.close()


def _settings(routes: list[tuple[str, str]], **overrides: object) -> GatewaySettings:
    dead = f"http://127.0.0.1:{free_port()}"
    values = {"environment": "test", "log_level": "WARNING", "extra_routes": routes,
              "database_url": f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='jz-gw-')}/gw.db",
              "classification_url": dead, "tracing_url": dead, "dispatch_url": dead, "assessment_url": dead}
    return GatewaySettings(**(values | overrides))  # type: ignore[arg-type]


def _bearer(settings: GatewaySettings, role: str = "command", unit: str | None = None) -> dict[str, str]:
    identity = Identity(username=unit or role, role=role, unit_id=unit)  # type: ignore[arg-type]
    return {"authorization": "Bearer " + issue_token(settings, identity)}


def test_token_bucket_refills_at_its_rate() -> None:
    limiter = RateLimiter(rate=2, burst=3)
    assert [limiter.take("a", now=0.0) for _ in range(3)] == [0, 0, 0]
    assert limiter.take("a", now=0.0) == pytest.approx(0.5)
    assert limiter.take("b", now=0.0) == 0  # per caller
    assert limiter.take("a", now=0.6) == 0
    assert retry_after(0.2) == "1" and retry_after(2.1) == "3"


async def test_over_the_rate_is_a_429_with_retry_after(upstream_url: str) -> None:
    settings = _settings([("^/api/v1/echo", upstream_url)], rate_per_s=1, rate_burst=3)
    async with serving(create_app(settings)) as gw:
        headers = _bearer(settings)
        statuses = [(await gw.get("/api/v1/echo/x", headers=headers)).status_code for _ in range(3)]
        refused = await gw.get("/api/v1/echo/x", headers=headers)
        other = await gw.get("/api/v1/echo/x", headers=_bearer(settings, "admin"))
    assert statuses == [200, 200, 200]
    assert_problem(refused, 429)
    assert int(refused.headers["retry-after"]) >= 1
    assert other.status_code == 200  # another caller has its own bucket


async def test_too_many_logins_are_a_429(upstream_url: str) -> None:
    async with serving(create_app(_settings([], login_rate_per_min=1, login_burst=3))) as gw:
        form = {"grant_type": "password", "username": "admin", "password": "wrong"}
        statuses = [(await gw.post("/api/v1/auth/token", data=form)).status_code for _ in range(4)]
        refused = await gw.post("/api/v1/auth/token", data=form | {"password": "demo"})
    assert statuses == [401, 401, 401, 429]
    assert_problem(refused, 429)  # even the right password waits
    assert int(refused.headers["retry-after"]) >= 1


@pytest.mark.parametrize(("query", "status"), [("limit=500", 200), ("limit=501", 422), ("limit=0", 422),
                                               ("limit=abc", 422), ("a=1&limit=9999", 422), ("x=limit", 200)])
async def test_page_size_above_the_maximum_is_a_422(upstream_url: str, query: str, status: int) -> None:
    settings = _settings([("^/api/v1/echo", upstream_url)])
    async with serving(create_app(settings)) as gw:
        response = await gw.get(f"/api/v1/echo/list?{query}", headers=_bearer(settings))
    if status == 422:
        assert "limit" in assert_problem(response, 422)["detail"]
    else:
        assert response.status_code == 200


@pytest.mark.parametrize(("path", "unit", "status"), [
    ("/api/v1/stations/ps-1/score", "ps-1", 503), ("/api/v1/stations/ps-2/score", "ps-1", 404),
    ("/api/v1/tasks?unit_id=ps-2", "ps-1", 404), ("/api/v1/incidents?station_id=ps-2", "ps-1", 404),
    ("/api/v1/incidents?station_id=ps-1", "ps-1", 503), ("/api/v1/tasks", "ps-1", 503),
])
async def test_station_naming_another_unit_is_a_404_before_any_service(path: str, unit: str, status: int) -> None:
    settings = _settings([])
    async with serving(create_app(settings)) as gw:
        response = await gw.get(path, headers=_bearer(settings, "station", unit))
    assert_problem(response, status)  # 503: it was let through to a (dead) service


async def test_slow_upstream_is_a_504(upstream_url: str) -> None:
    settings = _settings([("^/api/v1/slow", upstream_url)], upstream_timeout_s=0.5)
    async with serving(create_app(settings)) as gw:
        body = assert_problem(await gw.get("/api/v1/slow", headers=_bearer(settings)), 504)
    assert body["type"].endswith("/upstream-timeout")


async def test_upstream_speaking_garbage_is_a_502(garbage_url: str) -> None:
    settings = _settings([("^/api/v1/garbage", garbage_url)])
    async with serving(create_app(settings)) as gw:
        body = assert_problem(await gw.get("/api/v1/garbage", headers=_bearer(settings)), 502)
    assert body["type"].endswith("/bad-gateway")


async def test_server_sent_events_are_relayed(upstream_url: str) -> None:
    settings = _settings([("^/api/v1/events", upstream_url)])
    async with serving(create_app(settings)) as gw:
        response = await gw.get("/api/v1/events", headers=_bearer(settings) | {"accept": "text/event-stream"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text == "data: 0\n\ndata: 1\n\ndata: 2\n\n"


async def test_writes_are_audited_without_bodies_or_identity_numbers(upstream_url: str) -> None:
    settings = _settings([("^/api/v1/echo", upstream_url)], audit_flush_s=0.01)
    async with serving(create_app(settings)) as gw:
        admin = _bearer(settings, "admin")
        await gw.post("/api/v1/echo/persons/330109199001011234", headers=admin | {"x-request-id": "rid-audit-1"},
                      json={"id_number": "330109199001011234"})
        await gw.get("/api/v1/echo/read-only", headers=admin)
        await gw.post("/api/v1/echo/x", headers={"authorization": "Bearer nonsense"})

        async def logged() -> bool:
            page = (await gw.get("/api/v1/audit", headers=admin)).json()
            return len(page["items"]) >= 2

        await eventually(logged, what="audit entries")
        entries = (await gw.get("/api/v1/audit", headers=admin)).json()["items"]
        refused = await gw.get("/api/v1/audit", headers=_bearer(settings, "command"))
    assert_problem(refused, 403)
    assert [e["path"] for e in entries] == ["/api/v1/echo/x", "/api/v1/echo/persons/***"]
    assert entries[1] | {"id": 0, "at": None, "client": None} == {
        "id": 0, "at": None, "username": "admin", "role": "admin", "method": "POST",
        "path": "/api/v1/echo/persons/***", "status": 201, "request_id": "rid-audit-1", "client": None}
    assert entries[0]["status"] == 401 and entries[0]["username"] is None
    assert "330109199001011234" not in str(entries)


async def test_merged_document_keeps_public_paths_and_adds_problems() -> None:
    from gateway.openapi import merge

    service = {"paths": {"/api/v1/tasks": {"get": {"responses": {"200": {"description": "ok", "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/Task"}}}}}}},
                         "/internal/debug": {"get": {"responses": {}}},
                         "/api/v1/board": {"get": {"responses": {}}}},  # routed to assessment, not dispatch
               "components": {"schemas": {"Task": {"type": "object"}, "Shared": {"type": "string"}}}}
    other = {"paths": {"/api/v1/board": {"get": {"responses": {"200": {"description": "ok", "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/Shared"}}}}}}}},
             "components": {"schemas": {"Shared": {"type": "integer"}}}}
    doc = merge({"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": {}},
                {"dispatch": service, "assessment": other})
    assert set(doc["paths"]) == {"/api/v1/tasks", "/api/v1/board"}
    board = doc["paths"]["/api/v1/board"]["get"]
    # two services, one schema name, two shapes: the later service's (by name) is renamed
    assert board["responses"]["200"]["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/Shared"
    assert doc["components"]["schemas"]["Shared"] == {"type": "integer"}
    # …with its title, so generators (which name models by title) do not make two models of one name
    assert doc["components"]["schemas"]["DispatchShared"] == {"type": "string", "title": "DispatchShared"}
    assert {"401", "403", "404", "422", "429", "502", "503", "504"} <= set(board["responses"])
    assert "413" not in board["responses"]
    assert board["security"] == [{"bearer": []}]
    assert "example" in board["responses"]["429"]["content"]["application/problem+json"]


async def test_openapi_is_served_and_lists_services_still_missing() -> None:
    settings = _settings([], openapi_retry_s=0.0)
    async with serving(create_app(settings)) as gw:
        doc = (await gw.get("/api/v1/openapi.json")).json()
        docs = await gw.get("/docs")
    assert "/api/v1/auth/token" in doc["paths"] and "/api/v1/me" in doc["paths"]
    assert sorted(doc["info"]["x-missing-services"]) == ["assessment", "classification", "dispatch", "tracing"]
    assert docs.status_code == 200 and "/api/v1/openapi.json" in docs.text
