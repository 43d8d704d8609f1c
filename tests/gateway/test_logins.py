"""Logins that hold up behind a proxy (SQLite and PostgreSQL): the client address from X-Forwarded-For only via a
trusted proxy, back-off per account and address (429 + Retry-After, audited) that cannot lock an account for
everyone, refresh tokens rotated with reuse detection, and logout."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from argon2 import PasswordHasher

from deploy.natsd import free_port
from gateway.app import create_app
from gateway.config import GatewaySettings
from gateway.limits import backoff_s, client_address, trusted_networks
from gateway.logins import LoginGuard
from gateway.state import GatewayState
from shared.auth import Identity, issue_token
from tests.helpers import assert_problem, eventually, serving

PROXY = "127.0.0.1"  # the in-process client's address: the "Ingress" the gateway trusts
PASSWORD = "a-good-password"


def _settings(database_url: str, **overrides: object) -> GatewaySettings:
    dead = f"http://127.0.0.1:{free_port()}"
    values = {"environment": "test", "database_url": database_url, "log_level": "WARNING", "demo_accounts": False,
              "classification_url": dead, "tracing_url": dead, "dispatch_url": dead, "assessment_url": dead,
              "trusted_proxies": [PROXY], "audit_flush_s": 0.01}
    return GatewaySettings(**(values | overrides))  # type: ignore[arg-type]


async def _officers(gw: httpx.AsyncClient, n: int) -> list[str]:
    state: GatewayState = gw._transport.app.state.gateway  # type: ignore[attr-defined]
    assert state.accounts is not None
    # cheap argon2 parameters (a verify reads them from the hash): the tests count logins, not hashing cost
    secret_hash = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)
    names = [f"officer-{i}" for i in range(n)]
    for name in names:
        await state.accounts.ensure(username=name, kind="user", role="command", secret_hash=secret_hash)
    return names


def _login(name: str, password: str = PASSWORD, forwarded: str | None = None) -> dict:
    return {"data": {"grant_type": "password", "username": name, "password": password},
            "headers": {"x-forwarded-for": forwarded} if forwarded else {}}


@pytest.fixture
async def gateway(tmp_path: object) -> AsyncIterator[httpx.AsyncClient]:
    """On SQLite (the database-level behaviour is also checked on PostgreSQL below)."""
    url = f"sqlite+aiosqlite:///{tmp_path}/gw.db"
    async with serving(create_app(_settings(url, login_backoff_base_s=60.0))) as client:
        yield client


async def test_30_officers_behind_one_proxy_and_30_accounts_from_one_address_all_log_in(
        gateway: httpx.AsyncClient) -> None:
    names = await _officers(gateway, 30)
    behind = [await gateway.post("/api/v1/auth/token", **_login(n, forwarded=f"198.51.100.{i + 1}"))
              for i, n in enumerate(names)]
    one_address = [await gateway.post("/api/v1/auth/token", **_login(n, forwarded="203.0.113.7")) for n in names]
    assert [r.status_code for r in behind + one_address] == [200] * 60


async def test_wrong_passwords_slow_down_one_account_at_one_address_only(gateway: httpx.AsyncClient) -> None:
    [victim] = await _officers(gateway, 1)
    attacker, officer = "203.0.113.66", "198.51.100.20"
    tries = [await gateway.post("/api/v1/auth/token", **_login(victim, "wrong-password", attacker)) for _ in range(20)]
    assert [r.status_code for r in tries[:5]] == [401] * 5
    assert [r.status_code for r in tries[5:]] == [429] * 15  # never even checked: the pair waits
    assert 50 <= int(tries[-1].headers["retry-after"]) <= 60
    assert_problem(tries[-1], 429)
    # the right password from the attacker's address waits too; from the officer's own address it works
    assert (await gateway.post("/api/v1/auth/token", **_login(victim, forwarded=attacker))).status_code == 429
    assert (await gateway.post("/api/v1/auth/token", **_login(victim, forwarded=officer))).status_code == 200
    admin = {"authorization": "Bearer " + issue_token(_settings("sqlite://"), Identity(username="a", role="admin"))}

    async def audited() -> bool:
        page = (await gateway.get("/api/v1/audit", params={"username": victim, "limit": 500}, headers=admin)).json()
        seen = {(e["status"], e["client"]) for e in page["items"]}
        return {(401, attacker), (429, attacker), (200, officer)} <= seen

    await eventually(audited, what="the failures, the back-off and the good login in the audit log")


async def test_a_forwarded_address_counts_only_from_a_trusted_proxy(tmp_path: object) -> None:
    """Untrusted peer: X-Forwarded-For is the caller's own claim and is ignored (the peer's address counts)."""
    trusted = trusted_networks(["10.0.0.0/8", "127.0.0.1"])
    assert client_address("10.1.2.3", "198.51.100.1", trusted) == "198.51.100.1"
    assert client_address("10.1.2.3", "6.6.6.6, 198.51.100.1, 10.9.9.9", trusted) == "198.51.100.1"
    assert client_address("192.0.2.5", "198.51.100.1", trusted) == "192.0.2.5"
    assert client_address("10.1.2.3", "not-an-address", trusted) == "10.1.2.3"
    assert client_address("10.1.2.3", None, trusted) == "10.1.2.3"
    app = create_app(_settings(f"sqlite+aiosqlite:///{tmp_path}/gw.db", trusted_proxies=[], login_burst=3,
                               login_rate_per_min=1))
    async with serving(app) as gw:
        statuses = [(await gw.post("/api/v1/auth/token", **_login("x", forwarded=f"198.51.100.{i}"))).status_code
                    for i in range(1, 6)]
    assert statuses == [401, 401, 401, 429, 429]  # one bucket: the forged addresses did not count


def test_the_back_off_doubles_and_stops_at_15_minutes() -> None:
    waits = [backoff_s(n, after=5, base_s=1, max_s=900) for n in range(1, 18)]
    assert waits == [0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900, 900]


async def test_failures_are_counted_in_the_database_across_workers(database_url: str) -> None:
    """Two gateway workers (two guards on one database) count the same failures."""
    async with serving(create_app(_settings(database_url))) as one, serving(create_app(_settings(database_url))):
        state: GatewayState = one._transport.app.state.gateway  # type: ignore[attr-defined]
        assert state.sessions is not None
        a, b = LoginGuard(state.sessions, state.settings), LoginGuard(state.sessions, state.settings)
        waits = await asyncio.gather(*[(a if i % 2 else b).failed("li", "192.0.2.1") for i in range(6)])
        assert sorted(waits) == [0, 0, 0, 0, 1, 2]
        assert 0 < await a.wait_s("li", "192.0.2.1") <= 2
        assert await b.wait_s("li", "192.0.2.2") == 0
        await b.succeeded("li", "192.0.2.1")
        assert await a.wait_s("li", "192.0.2.1") == 0


async def test_refresh_tokens_rotate_a_replay_revokes_the_family_and_logout_revokes(database_url: str) -> None:
    async with serving(create_app(_settings(database_url, refresh_grace_s=0.5))) as gw:
        [name] = await _officers(gw, 1)

        async def refresh(token: str) -> httpx.Response:
            return await gw.post("/api/v1/auth/token", data={"grant_type": "refresh_token", "refresh_token": token})

        first = (await gw.post("/api/v1/auth/token", **_login(name))).json()["refresh_token"]
        second = await refresh(first)
        assert second.status_code == 200
        retried = await refresh(first)  # the answer was lost: a retry within the grace window still works
        assert retried.status_code == 200, retried.text
        third = (await refresh(second.json()["refresh_token"])).json()["refresh_token"]
        await asyncio.sleep(0.6)  # past the grace window
        replay = await refresh(first)
        assert_problem(replay, 401)
        assert "reused" in replay.json()["detail"]
        assert_problem(await refresh(third), 401)  # the whole family is gone, the newest token too
        assert_problem(await refresh(retried.json()["refresh_token"]), 401)

        session = (await gw.post("/api/v1/auth/token", **_login(name, forwarded="198.51.100.9"))).json()
        assert (await gw.post("/api/v1/auth/logout", data={"refresh_token": session["refresh_token"]})).status_code \
            == 204
        assert_problem(await refresh(session["refresh_token"]), 401)
        assert_problem(await gw.post("/api/v1/auth/logout", data={"refresh_token": session["access_token"]}), 401)
        other = (await gw.post("/api/v1/auth/token", **_login(name))).json()["refresh_token"]
        assert (await refresh(other)).status_code == 200  # logging out one session leaves the others
