"""What the tests share besides fixtures: polling with a deadline, problem checks, internal tokens, databases,
and the one harness for "a service app on a real nats-server with SQLite or PostgreSQL" (`Service`).

Fixtures live in the conftest files and build on these; nothing here imports a conftest, and bench/ has its own.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.auth import Identity, SigningKey, issue_internal_token, public_keyset
from shared.bus import Bus
from shared.db import make_engine, utcnow
from shared.events import Envelope, Fact
from shared.outbox import Outbox, add_outbox_tables
from shared.runtime import Runtime
from shared.settings import ServiceSettings, Settings
from tests.watchdog import dump_tasks

IN_CI = os.environ.get("CI", "").lower() == "true"
PG_ADMIN_DSN = os.environ.get("JIAOZHI_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
#: a fixture's teardown that takes longer fails the test (with every pending asyncio task's stack)
TEARDOWN_S = 30.0
#: parametrise a fixture with these to run the same test on SQLite and on PostgreSQL
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


async def eventually(check: Callable[[], Awaitable[bool]], *, what: str, timeout: float = 30.0) -> None:
    """Poll `check` until it holds, failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    return body


async def every_item(client: httpx.AsyncClient, path: str, *, headers: dict[str, str], limit: int,
                     most: int = 50, **params: Any) -> list[dict[str, Any]]:
    """A list's items walked page by page (`limit` each, following `next_cursor` until it is null)."""
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(most):
        response = await client.get(path, headers=headers,
                                    params={**params, "limit": limit, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= limit
        items += page["items"]
        if (cursor := page["next_cursor"]) is None:
            return items
    raise AssertionError(f"{path} did not end within {most} pages")


#: the tests' gateway key: the suite's gateways sign with it and its services accept it (tests/conftest.py puts it
#: in JIAOZHI_JWT_PRIVATE_KEY and JIAOZHI_JWT_PUBLIC_KEYS); a launched system makes its own (`System.keys()`)
GATEWAY_KEY = SigningKey.generate("tests")


def token_key_env() -> dict[str, str]:
    """The variables that make the suite's gateways sign with GATEWAY_KEY and every component accept it."""
    return {"JIAOZHI_JWT_PRIVATE_KEY": GATEWAY_KEY.private_jwk(), "JIAOZHI_JWT_PUBLIC_KEYS": public_keyset(GATEWAY_KEY)}


def auth(settings: Settings, role: str, unit_id: str | None = None, username: str | None = None, *,
         key: SigningKey = GATEWAY_KEY) -> dict[str, str]:
    """An Authorization header for a role, as the gateway passes it on to a service (an internal token signed
    with the gateway's key: the suite's, or a launched system's)."""
    identity = Identity(username=username or unit_id or role, role=role, unit_id=unit_id)  # type: ignore[arg-type]
    return {"authorization": "Bearer " + issue_internal_token(settings, identity, key=key)}


# --- databases ---------------------------------------------------------------------------------------------

async def _pg_reachable() -> bool:
    try:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await conn.close()
    return True


async def require_pg() -> None:
    """Skip without PostgreSQL, except in CI where it is a failure."""
    if not await _pg_reachable():
        if IN_CI:
            pytest.fail(f"PostgreSQL is required in CI but not reachable at {PG_ADMIN_DSN}")
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_DSN} (set CI=true to make this a failure)")


async def pg_admin(sql: str) -> None:
    """Run one statement as the PostgreSQL superuser."""
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(sql)
    finally:
        await admin.close()


async def _create_pg_database() -> tuple[str, str]:
    """Create an empty database; returns (name, SQLAlchemy URL)."""
    await require_pg()
    name = f"jz_test_{uuid.uuid4().hex[:12]}"
    await pg_admin(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return name, f"{base}/{name}"


@contextlib.asynccontextmanager
async def fresh_pg_database() -> AsyncIterator[str]:
    """A new, empty PostgreSQL database for one test; dropped afterwards. Fails in CI if PG is down."""
    name, url = await _create_pg_database()
    try:
        yield url
    finally:
        await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def fresh_pg_database_sync() -> Iterator[str]:
    """`fresh_pg_database` for synchronous fixtures (system tests that start processes)."""
    name, url = asyncio.run(_create_pg_database())
    try:
        yield url
    finally:
        asyncio.run(pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# --- apps --------------------------------------------------------------------------------------------------

async def bounded_teardown(step: Awaitable[Any], *, what: str, seconds: float = TEARDOWN_S) -> None:
    """Await a teardown step; past `seconds` fail the test, printing every pending asyncio task's stack."""
    task = asyncio.ensure_future(step)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if task not in done:
        dump_tasks(f"teardown of {what} still running after {seconds}s")
        task.cancel()
        pytest.fail(f"teardown of {what} took over {seconds}s (pending tasks printed above)")
    task.result()


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run an app's lifespan and talk to it in-process; the lifespan's shutdown is bounded (TEARDOWN_S)."""
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    try:
        transport = httpx.ASGITransport(app=app)
        # the tests read English details unless they ask for zh-CN (the default for a caller who says nothing)
        async with httpx.AsyncClient(transport=transport, base_url="http://service",
                                     headers={"accept-language": "en"}) as client:
            yield client
    finally:
        await bounded_teardown(lifespan.__aexit__(None, None, None), what=f"{app.title} lifespan")


def envelope_of(fact: Fact, *, subject: str | None = None) -> Envelope:
    """An envelope as the fact's owning service would publish it."""
    return Envelope(source=f"jiaozhi/{fact.owner()}", type=fact.subject, subject=subject, time=utcnow(),
                    data=fact.model_dump(mode="json"))


@dataclass
class Service:
    """A service app running in-process on a real nats-server, and a connection of its own (`bus`) that
    publishes and reads events as the other services would."""

    client: httpx.AsyncClient
    settings: ServiceSettings
    rt: Runtime
    bus: Bus
    published: int = 0
    subjects: set[str] = field(default_factory=set)

    def as_(self, role: str, unit_id: str | None = None) -> dict[str, str]:
        """Headers of a caller with this role (and unit), as the gateway would send them."""
        return auth(self.settings, role, unit_id=unit_id)

    def station(self, unit_id: str) -> dict[str, str]:
        """Headers of a station user."""
        return self.as_("station", unit_id)

    async def get(self, path: str, role: str = "command", unit_id: str | None = None, **params: Any
                  ) -> httpx.Response:
        return await self.client.get(path, params=params, headers=self.as_(role, unit_id))

    async def post(self, path: str, body: Any, role: str = "platform", unit_id: str | None = None
                   ) -> httpx.Response:
        return await self.client.post(path, json=body, headers=self.as_(role, unit_id))

    async def publish(self, *items: Envelope | Fact, msg_id: str | None = None, wait: bool = False) -> None:
        """Publish events as their owners' relays would; with `wait`, until this service consumed all so far."""
        assert self.bus.js is not None
        for item in items:
            envelope = item if isinstance(item, Envelope) else envelope_of(item)
            await self.bus.js.publish(envelope.type, envelope.model_dump_json().encode(),
                                      headers={"Nats-Msg-Id": msg_id or uuid.uuid4().hex})
            self.published += 1
            self.subjects.add(envelope.type)
        if wait:
            await self.settle(self.published)

    def consumed(self, subjects: set[str] | None = None, outcomes: tuple[str, ...] = ("handled", "duplicate")
                 ) -> float:
        """How many events of these subjects (default: all published) the service finished with."""
        total = 0.0
        for subject in subjects if subjects is not None else self.subjects:
            for outcome in outcomes:
                total += self.rt.metrics.registry.get_sample_value(
                    "events_consumed_total", {"subject": subject, "outcome": outcome}) or 0.0
        return total

    async def settle(self, expected: int, subjects: set[str] | None = None) -> None:
        """Wait until `expected` events were consumed."""
        async def done() -> bool:
            return self.consumed(subjects) >= expected

        await eventually(done, what=f"{expected} events to be consumed")

    async def count(self, table: Any) -> int:
        """Rows in one of the service's tables."""
        async with self.rt.sessions() as session:
            return int((await session.execute(select(func.count()).select_from(table))).scalar_one())

    async def outbox(self) -> tuple[int, int]:
        """(all rows, unsent rows) in the service's outbox."""
        async with self.rt.sessions() as session:
            return await self.count(self.rt.outbox.table), await self.rt.outbox.pending_count(session)

    async def relayed(self) -> bool:
        """Whether the outbox has nothing left to send."""
        return (await self.outbox())[1] == 0

    async def stream(self, owner: str, fact_type: type[Fact]) -> list[tuple[Envelope, dict[str, str]]]:
        """Every (envelope, headers) of this fact type on the owner's stream so far (none if it has no stream)."""
        assert self.bus.js is not None
        try:
            info = await self.bus.js.stream_info(owner.upper())
        except Exception:  # noqa: BLE001 - not created yet
            return []
        found: list[tuple[Envelope, dict[str, str]]] = []
        if info.state.messages == 0:
            return found
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await self.bus.js.get_msg(owner.upper(), seq)
            if msg.subject == fact_type.subject:
                found.append((Envelope.model_validate_json(msg.data), dict(msg.headers or {})))
        return found

    async def facts(self, owner: str, fact_type: type[Fact]) -> list[Any]:
        """Every fact of this type on the owner's stream so far, oldest first."""
        return [fact_type.model_validate(e.data) for e, _ in await self.stream(owner, fact_type)]


@contextlib.asynccontextmanager
async def running_service(create_app: Callable[[Any], FastAPI], settings: ServiceSettings, *,
                          streams: tuple[str, ...] = ()) -> AsyncIterator[Service]:
    """A service app with its lifespan running, and a publisher connection with the other owners' streams."""
    bus = Bus(settings.nats_url, name="test-publisher")
    await bus.connect(wait=5)
    try:
        for owner in streams:
            await bus.ensure_stream(owner)
        app = create_app(settings)
        async with serving(app) as client:
            yield Service(client, settings, app.state.rt, bus)
    finally:
        await bounded_teardown(bus.close(), what="the publisher's NATS connection")


@contextlib.asynccontextmanager
async def effect_database(database_url: str, *, source: str) -> AsyncIterator[tuple[AsyncEngine, Outbox, Table]]:
    """A database holding only an outbox, an inbox and an `effect` table (one row per handled event): what the
    bus tests need to see that an event took effect once."""
    metadata = MetaData()
    outbox_table, inbox_table = add_outbox_tables(metadata)
    effect = Table("effect", metadata, Column("id", Integer, primary_key=True, autoincrement=True),
                   Column("event_id", String(64), nullable=False), Column("unit_id", String(64), nullable=False))
    engine = make_engine(database_url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    try:
        yield engine, Outbox(outbox_table, inbox_table, source=source), effect
    finally:
        await engine.dispose()
