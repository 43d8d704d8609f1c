"""Idempotency-Key through the gateway: one effect per caller and key, the first answer replayed, another body
refused (422), a retry while the first is in flight refused (409), keys shared by gateway instances."""
from __future__ import annotations

import asyncio
import tempfile
import uuid

import httpx

from gateway.app import create_app
from gateway.config import GatewaySettings
from tests.gateway.upstreams import serving_upstream, slow_app
from tests.helpers import assert_problem, serving


def _settings(upstream: str, database: str) -> GatewaySettings:
    return GatewaySettings(environment="test", log_level="WARNING", database_url=database,
                           classification_url=upstream, tracing_url=upstream, dispatch_url=upstream,
                           assessment_url=upstream)


async def _login(gateway: httpx.AsyncClient, user: str) -> dict[str, str]:
    r = await gateway.post("/api/v1/auth/token", data={"grant_type": "password", "username": user,
                                                        "password": "demo"})
    return {"authorization": "Bearer " + r.json()["access_token"]}


async def test_two_gateways_share_keys_replay_the_answer_and_refuse_reuse_and_concurrent_retries() -> None:
    calls: list[str] = []
    database = f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='jz-gw-')}/gw.db"
    with serving_upstream(slow_app(0.4, calls)) as upstream:
        async with serving(create_app(_settings(upstream, database))) as one, \
                serving(create_app(_settings(upstream, database))) as two:
            platform = await _login(one, "admin")
            key = {"idempotency-key": str(uuid.uuid4())} | platform
            body = {"action": "accept"}
            first, early = await asyncio.gather(
                one.post("/api/v1/tasks/t-1/transitions", json=body, headers=key),
                _after(0.1, two.post("/api/v1/tasks/t-1/transitions", json=body, headers=key)))
            assert first.status_code == 201 and first.json() == {"call": 1}
            problem = assert_problem(early, 409)  # the first was still in flight
            assert problem["type"].endswith("/idempotency-key-in-flight") and early.headers["retry-after"]
            retry = await two.post("/api/v1/tasks/t-1/transitions", json=body, headers=key)
            assert (retry.status_code, retry.content) == (first.status_code, first.content)
            assert retry.headers["idempotent-replayed"] == "true"
            other = await one.post("/api/v1/tasks/t-1/transitions", json={"action": "start"}, headers=key)
            assert assert_problem(other, 422)["type"].endswith("/idempotency-key-reused")
            assert len(calls) == 1  # one effect
            command = await _login(two, "command")  # keys are per caller: the same key is another's own
            theirs = await two.post("/api/v1/tasks/t-1/transitions", json=body, headers=key | command)
            assert theirs.json() == {"call": 2} and "idempotent-replayed" not in theirs.headers
            bad = await one.post("/api/v1/tasks/t-1/transitions", json=body,
                                 headers=platform | {"idempotency-key": "x" * 300})
            assert_problem(bad, 400)


async def _after(seconds: float, call):  # noqa: ANN001, ANN202
    await asyncio.sleep(seconds)
    return await call
