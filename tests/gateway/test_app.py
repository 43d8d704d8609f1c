"""The gateway in-process: tokens, problem+json refusals, body limits, dead upstreams and real forwarding."""
from __future__ import annotations

import asyncio
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from deploy.natsd import free_port
from gateway.app import create_app
from gateway.config import GatewaySettings
from shared.auth import Identity, verify_internal_token
from shared.errors import PROBLEM
from tests.helpers import serving

PASSWORD = "demo"


def _echo_app() -> FastAPI:
    app = FastAPI()

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def echo(path: str, request: Request) -> Response:
        body = await request.body()
        rid = request.headers.get("x-request-id")
        status = int(request.query_params.get("status", "200"))
        return JSONResponse(
            {"method": request.method, "path": request.url.path, "query": request.url.query,
             "request_id": rid, "authorization": request.headers.get("authorization"),
             "host": request.headers.get("host"), "body": body.decode()},
            status_code=status, headers={"x-request-id": rid or "", "x-internal": "secret"},
        )

    return app


@pytest.fixture(scope="module")
def echo_url() -> Iterator[str]:
    """A real HTTP upstream (uvicorn in a background thread) echoing what it receives."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(_echo_app(), host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "echo upstream did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def _settings(**overrides: object) -> GatewaySettings:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: never touch the default service ports
    values = {"environment": "test", "database_url": f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='jz-gw-')}/gw.db",
              "classification_url": dead, "tracing_url": dead, "dispatch_url": dead,
              "assessment_url": dead, "upstream_timeout_s": 5.0, "log_level": "WARNING"}
    return GatewaySettings(**(values | overrides))  # type: ignore[arg-type]


@pytest.fixture
async def gateway() -> AsyncIterator[httpx.AsyncClient]:
    async with serving(create_app(_settings())) as client:
        yield client


async def _token(client: httpx.AsyncClient, **form: str) -> str:
    response = await client.post("/api/v1/auth/token", data=form)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] > 0
    return body["access_token"]


async def _login(client: httpx.AsyncClient, user: str) -> dict[str, str]:
    token = await _token(client, grant_type="password", username=user, password=PASSWORD)
    return {"authorization": f"Bearer {token}"}


def _assert_problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert {"type", "title", "status", "detail"} <= set(body)
    assert body["status"] == status
    assert body["type"].startswith("https://")
    return body


@pytest.mark.parametrize("user", ["admin", "command", "platform"])
async def test_password_grant_gives_a_token_for_the_role(gateway: httpx.AsyncClient, user: str) -> None:
    headers = await _login(gateway, user)
    me = await gateway.get("/api/v1/me", headers=headers)
    assert me.status_code == 200
    assert me.json() == {"username": user, "role": user, "unit_id": None}


async def test_client_credentials_grant_gives_platform_a_token(gateway: httpx.AsyncClient) -> None:
    token = await _token(gateway, grant_type="client_credentials", client_id="platform", client_secret=PASSWORD)
    me = await gateway.get("/api/v1/me", headers={"authorization": f"Bearer {token}"})
    assert me.json()["role"] == "platform"


@pytest.mark.parametrize("user", ["admin", "command"])
async def test_client_credentials_is_only_for_platforms(gateway: httpx.AsyncClient, user: str) -> None:
    response = await gateway.post("/api/v1/auth/token", data={"grant_type": "client_credentials", "client_id": user,
                                                             "client_secret": PASSWORD})
    _assert_problem(response, 401)


@pytest.mark.parametrize("user", ["admin", "platform", "no-such-user"])
async def test_wrong_password_is_a_401_problem(gateway: httpx.AsyncClient, user: str) -> None:
    response = await gateway.post("/api/v1/auth/token",
                                  data={"grant_type": "password", "username": user, "password": "wrong"})
    body = _assert_problem(response, 401)
    assert body["type"].endswith("/unauthorized")
    assert "access_token" not in body


async def test_missing_credentials_is_a_401_problem(gateway: httpx.AsyncClient) -> None:
    response = await gateway.post("/api/v1/auth/token", data={"grant_type": "password", "username": "admin"})
    _assert_problem(response, 401)


async def test_unsupported_grant_is_a_401_problem(gateway: httpx.AsyncClient) -> None:
    response = await gateway.post("/api/v1/auth/token", data={"grant_type": "authorization_code", "username": "admin",
                                                             "password": PASSWORD})
    body = _assert_problem(response, 401)
    assert "grant_type" in body["detail"]


async def test_me_without_a_token_is_a_401_problem(gateway: httpx.AsyncClient) -> None:
    _assert_problem(await gateway.get("/api/v1/me"), 401)


async def test_me_with_a_forged_token_is_a_401_problem(gateway: httpx.AsyncClient) -> None:
    headers = await _login(gateway, "command")
    header, payload, signature = headers["authorization"].split(".")
    forged = f"{header}.{payload}.{'A' * len(signature)}"
    _assert_problem(await gateway.get("/api/v1/me", headers={"authorization": forged}), 401)


async def test_request_without_a_token_is_a_401_problem(gateway: httpx.AsyncClient) -> None:
    body = _assert_problem(await gateway.get("/api/v1/tasks"), 401)
    assert body["instance"] == "/api/v1/tasks"


async def test_unknown_path_is_a_404_problem(gateway: httpx.AsyncClient) -> None:
    headers = await _login(gateway, "admin")
    body = _assert_problem(await gateway.get("/api/v1/nope", headers=headers), 404)
    assert "/api/v1/nope" in body["detail"]


async def test_platform_reading_tasks_is_a_403_problem(gateway: httpx.AsyncClient) -> None:
    headers = await _login(gateway, "platform")
    body = _assert_problem(await gateway.get("/api/v1/tasks", headers=headers), 403)
    assert "platform" in body["detail"]


async def test_body_over_the_limit_is_a_413_problem() -> None:
    async with serving(create_app(_settings(max_body_bytes=100))) as client:
        headers = await _login(client, "admin")
        response = await client.post("/api/v1/incidents", headers=headers, content=b"x" * 101)
        _assert_problem(response, 413)


async def test_chunked_body_over_the_limit_is_a_413_problem() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"y" * 40

    async with serving(create_app(_settings(max_body_bytes=100))) as client:
        headers = await _login(client, "admin")
        response = await client.post("/api/v1/incidents", headers=headers, content=chunks())
        _assert_problem(response, 413)


async def test_photo_uploads_alone_may_be_bigger_up_to_their_own_limit() -> None:
    async with serving(create_app(_settings(max_body_bytes=100, max_upload_bytes=300))) as client:
        headers = await _login(client, "admin")
        photo = await client.post("/api/v1/tasks/t-1/photos", headers=headers, content=b"x" * 200)
        assert photo.status_code != 413  # past the size check (no dispatch runs here: 503)
        _assert_problem(await client.post("/api/v1/tasks/t-1/photos", headers=headers, content=b"x" * 301), 413)
        _assert_problem(await client.post("/api/v1/incidents", headers=headers, content=b"x" * 200), 413)
        _assert_problem(await client.post("/api/v1/tasks/t-1/transitions", headers=headers, content=b"x" * 200),
                        413)


async def test_upstream_down_is_a_503_problem_with_retry_after(gateway: httpx.AsyncClient) -> None:
    headers = await _login(gateway, "admin")
    response = await gateway.get("/api/v1/tasks", headers=headers)
    body = _assert_problem(response, 503)
    assert body["type"].endswith("/upstream-unavailable")
    assert response.headers["retry-after"] == "1"


async def test_request_is_forwarded_to_its_upstream(echo_url: str) -> None:
    settings = _settings(extra_routes=[("^/api/v1/echo", echo_url)])
    async with serving(create_app(settings)) as client:
        headers = await _login(client, "command") | {"x-request-id": "req-abc-123"}
        response = await client.get("/api/v1/echo/a/b?x=1&y=two%20words&x=2", headers=headers)
    assert response.status_code == 200, response.text
    echoed = response.json()
    assert echoed["method"] == "GET"
    assert echoed["path"] == "/api/v1/echo/a/b"
    assert echoed["query"] == "x=1&y=two%20words&x=2"
    assert echoed["request_id"] == "req-abc-123"
    # the service gets a short-lived internal token for the same caller, never the caller's own token
    assert echoed["authorization"] != headers["authorization"]
    passed_on = verify_internal_token(settings, echoed["authorization"].removeprefix("Bearer "))
    assert passed_on == Identity(username="command", role="command")
    assert echoed["host"] != "service"
    assert response.headers.get_list("x-request-id") == ["req-abc-123"]
    assert "x-internal" not in response.headers


async def test_forwarding_passes_body_and_status_through(echo_url: str) -> None:
    settings = _settings(extra_routes=[("^/api/v1/echo", echo_url)])
    async with serving(create_app(settings)) as client:
        headers = await _login(client, "admin")
        response = await client.post("/api/v1/echo/things?status=201", headers=headers, content=b'{"a": 1}')
        teapot = await client.delete("/api/v1/echo/things/1?status=418", headers=headers)
    assert response.status_code == 201
    assert response.json()["method"] == "POST"
    assert response.json()["body"] == '{"a": 1}'
    assert teapot.status_code == 418
    assert teapot.json()["method"] == "DELETE"


async def test_gateway_makes_a_request_id_when_none_is_sent(echo_url: str) -> None:
    settings = _settings(extra_routes=[("^/api/v1/echo", echo_url)])
    async with serving(create_app(settings)) as client:
        headers = await _login(client, "admin")
        response = await client.get("/api/v1/echo/x", headers=headers)
    made = response.json()["request_id"]
    assert made and len(made) >= 16
    assert response.headers.get_list("x-request-id") == [made]


async def test_concurrent_forwarding_keeps_request_ids_apart(echo_url: str) -> None:
    settings = _settings(extra_routes=[("^/api/v1/echo", echo_url)])
    async with serving(create_app(settings)) as client:
        headers = await _login(client, "admin")
        responses = await asyncio.gather(*(
            client.get(f"/api/v1/echo/{i}", headers=headers | {"x-request-id": f"rid-{i}"}) for i in range(10)))
    for i, response in enumerate(responses):
        assert response.json()["request_id"] == f"rid-{i}"
        assert response.json()["path"] == f"/api/v1/echo/{i}"
