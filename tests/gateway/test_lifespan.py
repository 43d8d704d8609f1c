"""The gateway's lifespan: background loops from `LOOPS` run while it serves and are stopped with a deadline."""
from __future__ import annotations

import asyncio
import logging
import tempfile
import time

import pytest

from gateway import lifespan
from gateway.app import create_app
from gateway.config import GatewaySettings
from gateway.state import GatewayState
from tests.conftest import serving


async def test_a_loop_added_to_loops_runs_with_the_state_and_is_cancelled_at_shutdown(
        monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[object] = []
    stopped = asyncio.Event()

    async def extra(gw: GatewayState) -> None:
        seen.append(gw)
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    monkeypatch.setitem(lifespan.LOOPS, "extra", extra)
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(GatewaySettings(environment="test", database_url=f"sqlite+aiosqlite:///{tmp}/gw.db",
                                         log_level="WARNING"))
        async with serving(app) as client:
            assert (await client.get("/healthz")).status_code == 200
            await asyncio.sleep(0)
            assert seen == [app.state.gateway]
            assert not stopped.is_set()
        assert stopped.is_set()


async def test_stop_waits_no_longer_than_the_deadline_and_says_which_loops_lingered_or_failed(
        caplog: pytest.LogCaptureFixture) -> None:
    async def stubborn() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await asyncio.sleep(5)  # ignores the first cancellation for longer than the deadline

    async def failing() -> None:
        raise RuntimeError("boom")

    tasks = [asyncio.create_task(stubborn(), name="stubborn"), asyncio.create_task(failing(), name="failing")]
    await asyncio.sleep(0)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="gateway.lifespan"):
        await lifespan.stop(tasks, 0.2)
    assert time.monotonic() - started < 2
    assert "stubborn did not stop within 0.2 s" in caplog.text
    assert "failing failed" in caplog.text
    tasks[0].cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
