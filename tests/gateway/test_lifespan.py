"""The gateway's lifespan: background loops from `LOOPS` run while it serves and are stopped within `shutdown_s`."""
from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Iterator

import pytest

from gateway import lifespan
from gateway.app import create_app
from gateway.config import GatewaySettings
from gateway.state import GatewayState
from tests.helpers import serving


@pytest.fixture
def settings() -> Iterator[GatewaySettings]:
    with tempfile.TemporaryDirectory() as tmp:
        yield GatewaySettings(environment="test", database_url=f"sqlite+aiosqlite:///{tmp}/gw.db",
                              log_level="WARNING", shutdown_s=0.5)


async def test_a_loop_added_to_loops_runs_with_the_state_and_is_cancelled_at_shutdown(
        monkeypatch: pytest.MonkeyPatch, settings: GatewaySettings) -> None:
    seen: list[object] = []
    stopped = asyncio.Event()

    async def extra(gw: GatewayState) -> None:
        seen.append(gw)
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    monkeypatch.setitem(lifespan.LOOPS, "extra", extra)
    app = create_app(settings)
    async with serving(app) as client:
        assert (await client.get("/healthz")).status_code == 200
        await asyncio.sleep(0.05)  # the loop runs alongside: let it start
        assert seen == [app.state.gateway]
        assert not stopped.is_set()
    assert stopped.is_set()


async def test_a_loop_that_ignores_cancellation_is_cut_at_the_deadline_and_the_audit_log_still_written(
        monkeypatch: pytest.MonkeyPatch, settings: GatewaySettings) -> None:
    released = asyncio.Event()

    async def stubborn(gw: GatewayState) -> None:
        while not released.is_set():
            try:
                await released.wait()
            except asyncio.CancelledError:
                pass  # swallows every cancellation until the test ends

    monkeypatch.setitem(lifespan.LOOPS, "stubborn", stubborn)
    app = create_app(settings)
    async with serving(app) as client:
        await client.post("/api/v1/auth/token", data={"grant_type": "password", "username": "admin",
                                                      "password": "wrong"})
        started = time.monotonic()
    took = time.monotonic() - started
    left = [t for t in asyncio.all_tasks() if t.get_name() == "gateway:stubborn" and not t.done()]
    released.set()
    assert took < 2  # shutdown_s is 0.5
    assert len(left) == 1  # cut, not waited for
    restarted = create_app(settings)
    async with serving(restarted) as client:
        token = (await client.post("/api/v1/auth/token", data={"grant_type": "password", "username": "admin",
                                                               "password": "demo"})).json()["access_token"]
        audit = await client.get("/api/v1/audit", headers={"authorization": f"Bearer {token}"})
    assert [(e["username"], e["status"]) for e in audit.json()["items"]][-1] == ("admin", 401)
