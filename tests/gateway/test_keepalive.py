"""Issue 17's 502 on intake: a pooled connection reused just as the upstream closes it for idleness fails with no
answer (aiohttp: ServerDisconnectedError → 502). The gateway's client drops idle connections well before the
services' uvicorn does, so it never sends on one being closed."""
from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from deploy.natsd import free_port
from gateway.forward import CLIENT_KEEP_ALIVE_S, make_client
from shared.settings import KEEP_ALIVE_S

SERVER_KEEP_ALIVE_S = 0.3  # scaled down from KEEP_ALIVE_S to keep the test fast


async def _ok(scope: dict, receive, send) -> None:  # noqa: ANN001 - ASGI
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 201, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(_ok, port=port, log_level="error", lifespan="off",
                                           timeout_keep_alive=SERVER_KEEP_ALIVE_S))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}/"
    server.should_exit = True
    thread.join(5)


async def _failures_after_idle(url: str, keep_alive_s: float) -> int:
    """Bursts of POSTs, each after an idle gap around the server's keep-alive; how many got no answer."""
    failures = 0
    async with make_client(5.0, keep_alive_s=keep_alive_s) as client:
        async def post() -> None:
            async with client.post(url, data=b"{}") as r:
                assert r.status == 201
        for trial in range(12):
            await asyncio.gather(*(post() for _ in range(20)))
            await asyncio.sleep(SERVER_KEEP_ALIVE_S * (0.9 + 0.02 * trial))
            results = await asyncio.gather(*(post() for _ in range(20)), return_exceptions=True)
            failures += sum(isinstance(r, Exception) for r in results)
    return failures


async def test_a_client_keeping_connections_longer_than_the_server_loses_requests(upstream: str) -> None:
    """The reproduction (the former setting: the client's 30 s against the server's few seconds)."""
    assert await _failures_after_idle(upstream, keep_alive_s=100 * SERVER_KEEP_ALIVE_S) > 0


async def test_the_gateway_client_drops_idle_connections_before_the_server_does(upstream: str) -> None:
    assert CLIENT_KEEP_ALIVE_S < KEEP_ALIVE_S  # the production values: services and gateway run uvicorn with it
    assert await _failures_after_idle(upstream, keep_alive_s=SERVER_KEEP_ALIVE_S * CLIENT_KEEP_ALIVE_S
                                      / KEEP_ALIVE_S) == 0
