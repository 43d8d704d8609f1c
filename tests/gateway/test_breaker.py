"""One service frozen: the gateway stays ready, its routes answer a 503 problem with Retry-After within a second
(circuit breaker), every other route keeps working, each 5xx is logged with its cause, and it recovers."""
from __future__ import annotations

import asyncio
import json
import tempfile
import time

import aiohttp
import httpx
import pytest

from deploy.natsd import free_port
from gateway.app import create_app
from gateway.breaker import Breakers
from gateway.config import GatewaySettings
from tests.gateway.upstreams import frozen_upstream, ok_app, serving_upstream
from tests.helpers import assert_problem, eventually, serving


def _settings(working: str, frozen: str) -> GatewaySettings:
    return GatewaySettings(environment="test", log_level="WARNING", upstream_timeout_s=10.0,
                           database_url=f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='jz-gw-')}/gw.db",
                           classification_url=working, tracing_url=working, dispatch_url=working,
                           assessment_url=frozen)


async def _admin(gateway: httpx.AsyncClient) -> dict[str, str]:
    r = await gateway.post("/api/v1/auth/token", data={"grant_type": "password", "username": "admin",
                                                        "password": "demo"})
    return {"authorization": "Bearer " + r.json()["access_token"]}


async def test_a_frozen_service_gets_quick_503s_while_the_gateway_stays_ready_and_recovers(
        capfd: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    with serving_upstream(ok_app) as working:
        frozen = frozen_upstream(port)
        frozen_url = frozen.__enter__()
        try:
            async with serving(create_app(_settings(working, frozen_url))) as gateway:
                headers = await _admin(gateway)
                breaker = gateway._transport.app.state.gateway.core.breakers.of(frozen_url)  # type: ignore[attr-defined]
                await eventually(lambda: _true(breaker.is_open), what="the breaker to open", timeout=5)
                ready = await gateway.get("/readyz")
                assert ready.status_code == 200, ready.text
                assert ready.json()["upstreams"]["assessment"].startswith("open")
                took = []
                capfd.readouterr()
                for _ in range(5):
                    started = time.perf_counter()
                    r = await gateway.get("/api/v1/board", headers=headers)
                    took.append(time.perf_counter() - started)
                    assert_problem(r, 503)
                    assert int(r.headers["retry-after"]) >= 1
                assert max(took) < 1.0, took
                logged = [json.loads(line) for line in capfd.readouterr().err.splitlines() if '"status": 503' in line]
                assert len(logged) == 5, logged  # each 5xx logged, with its cause
                assert all(e["cause"].startswith("circuit open") and e["request_id"] for e in logged), logged
                print(f"503 with assessment frozen: max {max(took) * 1000:.1f} ms over 5 requests")
                assert (await gateway.get("/api/v1/tasks", headers=headers)).status_code == 200  # others work
                frozen.__exit__(None, None, None)
                frozen = None
                with serving_upstream(ok_app, port):  # the service is back on its port
                    await eventually(lambda: _true(not breaker.is_open), what="the breaker to close", timeout=5)
                    assert (await gateway.get("/api/v1/board", headers=headers)).status_code == 200
        finally:
            if frozen is not None:
                frozen.__exit__(None, None, None)


async def _true(value: bool) -> bool:
    return value


async def test_calls_failing_in_a_row_open_the_breaker_before_the_probe_does() -> None:
    with serving_upstream(ok_app) as working:
        dead = f"http://127.0.0.1:{free_port()}"
        settings = _settings(working, dead).model_copy(update={"probe_interval_s": 3600.0})
        async with serving(create_app(settings)) as gateway:
            headers = await _admin(gateway)
            breaker = gateway._transport.app.state.gateway.core.breakers.of(dead)  # type: ignore[attr-defined]
            breaker.succeeded()  # as if the one probe at start had passed
            for _ in range(3):
                assert_problem(await gateway.get("/api/v1/board", headers=headers), 503)
            assert breaker.is_open and "3 calls in a row" in breaker.cause
            await asyncio.sleep(0)


async def test_a_call_waiting_on_a_service_that_freezes_is_cut_short_when_the_breaker_opens() -> None:
    with serving_upstream(ok_app) as working, frozen_upstream() as frozen:
        async with serving(create_app(_settings(working, frozen))) as gateway:
            headers = await _admin(gateway)
            breaker = gateway._transport.app.state.gateway.core.breakers.of(frozen)  # type: ignore[attr-defined]
            await eventually(lambda: _true(breaker.is_open), what="the first probe", timeout=5)
            breaker.succeeded()  # as if it had answered until now: this call goes through and waits
            started = time.perf_counter()
            r = await gateway.get("/api/v1/board", headers=headers)
            took = time.perf_counter() - started
            assert_problem(r, 503)
            assert took < 5.0 and breaker.is_open, took  # cut short: not the 10 s request timeout (~0.7 s idle)
            assert not breaker.waiting and not breaker.cut
            assert (await gateway.get("/api/v1/tasks", headers=headers)).status_code == 200


async def test_a_slow_probe_opens_the_breaker_only_when_nothing_else_was_answered_meanwhile() -> None:
    async def slow_health(scope: dict, receive, send) -> None:  # noqa: ANN001 - ASGI: a busy, not frozen, service
        if scope["type"] == "http" and scope["path"] == "/healthz":
            await asyncio.sleep(1.0)
        await ok_app(scope, receive, send)

    with serving_upstream(slow_health) as busy:
        breakers = Breakers({"assessment": busy}, probe_timeout_s=0.3)
        breaker = breakers.of(busy)
        async with aiohttp.ClientSession() as client:
            async def a_forwarded_call_answers() -> None:
                await asyncio.sleep(0.1)
                breaker.succeeded()  # what the proxy does when a forwarded call is answered

            await asyncio.gather(breakers.probe_once(client), a_forwarded_call_answers())
            assert not breaker.is_open, breaker.cause  # it answers calls: busy, not down
            await breakers.probe_once(client)  # nothing answered while this probe waited
            assert breaker.is_open and "no answer within 0.3s" in breaker.cause
