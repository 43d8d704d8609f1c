"""Outbox relay and idempotent consumers against a real nats-server, on SQLite and PostgreSQL."""
from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import Table, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.bus import Bus, OutboxRelay, Subscription
from shared.consumer import Consumer
from shared.db import make_sessions, utcnow
from shared.events import Envelope, Fact, UnitUpserted
from shared.observability import Metrics
from shared.outbox import Outbox
from tests.helpers import effect_database

SUBJECT = UnitUpserted.subject
STREAM = "DISPATCH"


async def eventually(check: Callable[[], bool | Awaitable[bool]], *, timeout: float = 10.0,
                     what: str = "condition") -> None:
    """Poll `check` (plain or async) until it holds, failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await _value(check()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


async def _value(result: bool | Awaitable[bool]) -> bool:
    return await result if inspect.isawaitable(result) else result


@dataclass
class World:
    """A tiny service: outbox, inbox and an `effect` table, a bus and metrics."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    outbox: Outbox
    effect: Table
    bus: Bus
    metrics: Metrics

    async def count(self, table: Table) -> int:
        async with self.sessions() as session:
            return int((await session.execute(select(func.count()).select_from(table))).scalar_one())

    def consumed(self, outcome: str, subject: str = SUBJECT) -> float:
        value = self.metrics.registry.get_sample_value("events_consumed_total",
                                                       {"subject": subject, "outcome": outcome})
        return value or 0.0

    async def publish(self, body: bytes, *, msg_id: str | None = None) -> None:
        assert self.bus.js is not None
        await self.bus.js.publish(SUBJECT, body, headers={"Nats-Msg-Id": msg_id or uuid.uuid4().hex})

    async def stream_messages(self) -> int:
        assert self.bus.js is not None
        return (await self.bus.js.stream_info(STREAM)).state.messages


@pytest.fixture
async def world(database_url: str, nats_url: str) -> AsyncIterator[World]:
    async with effect_database(database_url, source="test/bus") as (engine, outbox, effect):
        bus = Bus(nats_url, name="test-bus")
        await bus.connect(wait=5)
        await bus.ensure_stream("dispatch")
        yield World(engine, make_sessions(engine), outbox, effect, bus,
                    Metrics("test"))
        await bus.close()


def fact(unit_id: str = "ps-yiqiao") -> UnitUpserted:
    return UnitUpserted(unit_id=unit_id, name=f"Station {unit_id}", kind="station", area_type="rural")


def envelope(unit_id: str = "ps-yiqiao") -> Envelope:
    return Envelope(source="test/bus", type=SUBJECT, time=utcnow(), data=fact(unit_id).model_dump(mode="json"))


@contextlib.asynccontextmanager
async def running(consumer: Consumer) -> AsyncIterator[None]:
    task = asyncio.create_task(consumer.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def consumer_for(world: World, handler: Callable[[AsyncSession, Fact, Envelope], Awaitable[None]]) -> Consumer:
    sub = Subscription("probe", "dispatch", {UnitUpserted: handler})
    return Consumer(world.bus, world.sessions, world.outbox, sub, relay=None, metrics=world.metrics, batch=10)


def recording_handler(world: World) -> Callable[[AsyncSession, Fact, Envelope], Awaitable[None]]:
    async def handle(session: AsyncSession, fact: Fact, env: Envelope) -> None:
        assert isinstance(fact, UnitUpserted)
        await session.execute(world.effect.insert().values(event_id=env.id, unit_id=fact.unit_id))

    return handle


# --- the outbox relay ----------------------------------------------------------------------------

async def test_rolled_back_event_is_never_published_and_committed_one_is_published_once_with_its_id(
        world: World) -> None:
    relay = OutboxRelay(world.bus, world.sessions, world.outbox, metrics=world.metrics)
    with pytest.raises(RuntimeError, match="use case failed"):
        async with world.sessions() as session, session.begin():
            await world.outbox.stage(session, fact("ps-rolled-back"))
            raise RuntimeError("use case failed")
    async with world.sessions() as session, session.begin():
        staged = await world.outbox.stage(session, fact("ps-committed"), subject="ps-committed")

    assert await relay.relay_once() == 1

    assert world.bus.js is not None
    assert await world.stream_messages() == 1
    msg = await world.bus.js.get_msg(STREAM, 1)
    assert msg.subject == SUBJECT
    assert msg.headers is not None and msg.headers["Nats-Msg-Id"] == staged.id
    published = Envelope.model_validate_json(msg.data)
    assert published.id == staged.id
    assert published.subject == "ps-committed"
    assert UnitUpserted.model_validate(published.data).unit_id == "ps-committed"
    async with world.sessions() as session:
        rows = (await session.execute(select(world.outbox.table))).all()
    assert [(r.event_id, r.sent_at is not None) for r in rows] == [(staged.id, True)]
    assert world.metrics.registry.get_sample_value("events_published_total", {"subject": SUBJECT}) == 1


async def test_relaying_again_or_after_a_crash_before_marking_leaves_one_message_in_the_stream(world: World) -> None:
    relay = OutboxRelay(world.bus, world.sessions, world.outbox, metrics=world.metrics)
    async with world.sessions() as session, session.begin():
        await world.outbox.stage(session, fact())
    assert await relay.relay_once() == 1

    assert await relay.relay_once() == 0
    assert await world.stream_messages() == 1

    # a crash after publishing but before marking: the row is unsent again and goes out a second time
    async with world.sessions() as session, session.begin():
        await session.execute(update(world.outbox.table).values(sent_at=None))
    async with world.sessions() as session:
        assert await world.outbox.pending_count(session) == 1
    assert await relay.relay_once() == 1

    assert await world.stream_messages() == 1  # JetStream dropped the re-publish of the same Nats-Msg-Id
    async with world.sessions() as session:
        assert await world.outbox.pending_count(session) == 0


async def test_relay_run_publishes_a_commit_as_soon_as_it_is_notified(world: World) -> None:
    relay = OutboxRelay(world.bus, world.sessions, world.outbox, metrics=world.metrics, poll_s=30)
    task = asyncio.create_task(relay.run())
    try:
        await asyncio.sleep(0.1)  # let the relay reach its wait
        async with world.sessions() as session, session.begin():
            await world.outbox.stage(session, fact())
        relay.notify()

        async def published() -> bool:
            return await world.stream_messages() == 1

        await eventually(published, timeout=5, what="the notified relay to publish")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# --- consumers ------------------------------------------------------------------------------------

async def test_the_same_envelope_delivered_twice_takes_effect_once_and_counts_as_a_duplicate(world: World) -> None:
    env = envelope()
    body = env.model_dump_json().encode()
    await world.publish(body, msg_id="first")
    await world.publish(body, msg_id="second")  # another Nats-Msg-Id: JetStream keeps both copies
    assert await world.stream_messages() == 2

    async with running(consumer_for(world, recording_handler(world))):
        await eventually(lambda: (world.consumed("duplicate") == 1), what="the second copy to be seen")

    assert world.consumed("handled") == 1
    async with world.sessions() as session:
        effects = (await session.execute(select(world.effect.c.event_id, world.effect.c.unit_id))).all()
        inbox = (await session.execute(select(world.outbox.inbox.c.consumer, world.outbox.inbox.c.event_id))).all()
    assert [tuple(r) for r in effects] == [(env.id, "ps-yiqiao")]
    assert [tuple(r) for r in inbox] == [("probe", env.id)]


async def test_a_handler_that_fails_once_is_redelivered_and_takes_effect_once(world: World) -> None:
    attempts: list[str] = []
    record = recording_handler(world)

    async def flaky(session: AsyncSession, fact: Fact, env: Envelope) -> None:
        attempts.append(env.id)
        await record(session, fact, env)  # written, then rolled back with the inbox claim
        if len(attempts) == 1:
            raise ConnectionError("downstream briefly away")

    env = envelope()
    await world.publish(env.model_dump_json().encode())

    async with running(consumer_for(world, flaky)):
        await eventually(lambda: (world.consumed("handled") == 1), what="the redelivery to succeed")

    assert attempts == [env.id, env.id]
    assert world.consumed("failed") == 1
    assert await world.count(world.effect) == 1
    assert await world.count(world.outbox.inbox) == 1


async def test_a_malformed_message_is_terminated_and_does_not_block_the_next_one(world: World) -> None:
    await world.publish(b"this is not an envelope")
    await world.publish(b'{"specversion": "1.0", "type": "dispatch.unit.upserted.v1"}')  # JSON, but no envelope
    good = envelope("ps-heshang")
    await world.publish(good.model_dump_json().encode())

    async with running(consumer_for(world, recording_handler(world))):
        await eventually(lambda: (world.consumed("handled") == 1), what="the good message to be handled")
        assert world.bus.js is not None

        async def settled() -> bool:
            info = await world.bus.js.consumer_info(STREAM, "probe-on-dispatch")
            return info.num_ack_pending == 0 and info.num_pending == 0

        await eventually(settled, what="every message to be acked or terminated")
        info = await world.bus.js.consumer_info(STREAM, "probe-on-dispatch")
        assert info.num_redelivered == 0

    assert world.consumed("malformed") == 2
    async with world.sessions() as session:
        effects = (await session.execute(select(world.effect.c.unit_id))).scalars().all()
    assert effects == ["ps-heshang"]


async def test_an_envelope_whose_data_does_not_match_the_contract_is_terminated(world: World) -> None:
    bad = Envelope(source="test/bus", type=SUBJECT, time=utcnow(), data={"unit_id": "x"})  # no name, no kind
    await world.publish(bad.model_dump_json().encode())
    await world.publish(envelope().model_dump_json().encode())

    async with running(consumer_for(world, recording_handler(world))):
        await eventually(lambda: (world.consumed("handled") == 1), what="the good message to be handled")

    assert world.consumed("malformed") == 1
    assert world.consumed("failed") == 0
    assert await world.count(world.effect) == 1
    assert await world.count(world.outbox.inbox) == 1


# --- stopping -------------------------------------------------------------------------------------

async def _stops_within(task: asyncio.Task, seconds: float = 3.0) -> None:
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        pytest.fail(f"the loop kept running {seconds}s after it was cancelled")
    assert task.cancelled()


async def test_the_relay_stops_when_cancelled_in_the_same_tick_as_a_notify(world: World) -> None:
    relay = OutboxRelay(world.bus, world.sessions, world.outbox, metrics=world.metrics, poll_s=0.2)
    task = asyncio.create_task(relay.run())
    await asyncio.sleep(0.3)  # idle in its wait for work

    relay.notify()  # on Python 3.11, asyncio.wait_for then swallows the cancel that follows
    task.cancel()

    await _stops_within(task)


async def test_a_consumer_stops_even_if_a_cancel_is_swallowed_inside_fetch(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    class SwallowingPull:
        """A fetch that loses a cancel the way asyncio.wait_for does on Python 3.11 when a message lands."""

        async def fetch(self, batch: int, timeout: float) -> list[Any]:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(timeout)
            return []

    async def pull_subscribe(*args: Any, **kwargs: Any) -> SwallowingPull:
        return SwallowingPull()

    assert world.bus.js is not None
    monkeypatch.setattr(world.bus.js, "pull_subscribe", pull_subscribe)
    task = asyncio.create_task(consumer_for(world, recording_handler(world)).run())
    await asyncio.sleep(0.2)  # inside fetch

    task.cancel()

    await _stops_within(task)


async def test_a_durable_created_by_an_older_release_gets_the_new_subject_filters(world: World) -> None:
    from nats.js.api import ConsumerConfig

    from shared.events import IncidentReported, Location

    assert world.bus.js is not None
    await world.bus.js.add_consumer(STREAM, ConsumerConfig(name="probe-on-dispatch", durable_name="probe-on-dispatch",
                                                           filter_subjects=[SUBJECT]))
    seen: list[str] = []

    async def on_incident(session: AsyncSession, fact: Fact, env: Envelope) -> None:
        assert isinstance(fact, IncidentReported)
        seen.append(fact.incident_id)

    sub = Subscription("probe", "dispatch", {UnitUpserted: recording_handler(world), IncidentReported: on_incident})
    consumer = Consumer(world.bus, world.sessions, world.outbox, sub, relay=None, metrics=world.metrics, batch=10)
    incident = IncidentReported(incident_id="i-1", external_id="x-1", kind="accident", occurred_at=utcnow(),
                                location=Location(lat=29.7, lon=120.2))
    env = Envelope(source="test/bus", type=IncidentReported.subject, time=utcnow(),
                   data=incident.model_dump(mode="json"))
    await world.bus.js.publish(IncidentReported.subject, env.model_dump_json().encode())
    async with running(consumer):
        await eventually(lambda: seen == ["i-1"], what="the incident under the new filter")
    info = await world.bus.js.consumer_info(STREAM, "probe-on-dispatch")
    assert sorted(info.config.filter_subjects or []) == sorted([SUBJECT, IncidentReported.subject])


# --- staging many and the pipelined relay ---------------------------------------------------------

async def stream_subjects_and_ids(world: World) -> list[tuple[str, str]]:
    """(Envelope subject, Nats-Msg-Id) of every message in the stream, in stream order."""
    assert world.bus.js is not None
    out = []
    for seq in range(1, await world.stream_messages() + 1):
        msg = await world.bus.js.get_msg(STREAM, seq)
        assert msg.headers is not None
        out.append((Envelope.model_validate_json(msg.data).subject or "", msg.headers["Nats-Msg-Id"]))
    return out


async def test_stage_many_writes_the_envelopes_stage_would_and_the_relay_sends_them_in_order(world: World) -> None:
    units = [f"ps-{i:03d}" for i in range(60)]
    async with world.sessions() as session, session.begin():
        ids = await world.outbox.stage_many(session, UnitUpserted, [fact(u).model_dump() for u in units],
                                            subjects=units)
        single = await world.outbox.stage(session, fact("ps-last"), subject="ps-last")
        assert session.info["staged_events"] == 61
        bodies = (await session.execute(select(world.outbox.table.c.body).order_by(world.outbox.table.c.seq))).scalars()
    for body in bodies:  # byte for byte what Envelope.model_dump_json writes
        assert Envelope.model_validate_json(body).model_dump_json() == body
    relay = OutboxRelay(world.bus, world.sessions, world.outbox, metrics=world.metrics, batch=25, in_flight=4)

    assert [await relay.relay_once() for _ in range(4)] == [25, 25, 11, 0]

    assert await stream_subjects_and_ids(world) == list(zip(units + ["ps-last"], ids + [single.id], strict=True))
    assert world.bus.js is not None
    first = Envelope.model_validate_json((await world.bus.js.get_msg(STREAM, 1)).data)
    assert (first.source, first.type, first.id) == ("test/bus", SUBJECT, ids[0])
    assert len(set(ids)) == 60 and all(uuid.UUID(i).version == 4 for i in ids)
    assert UnitUpserted.model_validate(first.data) == fact(units[0])
    async with world.sessions() as session:
        assert await world.outbox.pending_count(session) == 0


async def test_stage_many_stages_nothing_when_a_payload_breaks_the_contract(world: World) -> None:
    payloads = [fact("ps-ok").model_dump(), {"unit_id": "ps-bad", "kind": "station"}]  # no name
    with pytest.raises(ValidationError):
        async with world.sessions() as session, session.begin():
            await world.outbox.stage_many(session, UnitUpserted, payloads)
    assert await world.count(world.outbox.table) == 0


async def test_a_failed_publish_leaves_only_its_row_unsent_and_the_others_go_out_once(world: World) -> None:
    async with world.sessions() as session, session.begin():
        ids = await world.outbox.stage_many(session, UnitUpserted, [fact(f"ps-{i}").model_dump() for i in range(5)],
                                            subjects=[f"ps-{i}" for i in range(5)])
        # a row no stream takes: its publish fails (no responders) while the rows around it succeed
        await session.execute(world.outbox.table.update().where(world.outbox.table.c.event_id == ids[2])
                              .values(subject="nostream.lost"))
    relay = OutboxRelay(world.bus, world.sessions, world.outbox, metrics=world.metrics, in_flight=2)

    assert await relay.relay_once() == 4
    assert await relay.relay_once() == 0  # still failing: stays unsent, nothing published twice

    assert [i for _, i in await stream_subjects_and_ids(world)] == ids[:2] + ids[3:]
    async with world.sessions() as session:
        unsent = (await session.execute(select(world.outbox.table.c.event_id)
                                        .where(world.outbox.table.c.sent_at.is_(None)))).scalars().all()
    assert unsent == [ids[2]]
    assert world.metrics.registry.get_sample_value("events_published_total", {"subject": SUBJECT}) == 4


async def test_publishes_without_an_ack_count_as_failed_and_stay_unsent(world: World,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    async with world.sessions() as session, session.begin():
        await world.outbox.stage_many(session, UnitUpserted, [fact(f"ps-{i}").model_dump() for i in range(3)])
    assert world.bus.js is not None

    async def never_acked(*args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        return asyncio.get_running_loop().create_future()  # the broker took it but no ack ever comes

    monkeypatch.setattr(world.bus.js, "publish_async", never_acked)
    relay = OutboxRelay(world.bus, world.sessions, world.outbox, metrics=world.metrics, ack_timeout_s=0.2)

    assert await relay.relay_once() == 0

    async with world.sessions() as session:
        assert await world.outbox.pending_count(session) == 3


async def test_the_database_is_free_for_other_work_while_the_relay_waits_for_acks(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    async with world.sessions() as session, session.begin():
        await world.outbox.stage(session, fact("ps-waiting"))
    assert world.bus.js is not None
    acks: list[asyncio.Future[Any]] = []

    async def held(*args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        acks.append(asyncio.get_running_loop().create_future())  # the ack comes when the test says so
        return acks[-1]

    monkeypatch.setattr(world.bus.js, "publish_async", held)
    relay = OutboxRelay(world.bus, world.sessions, world.outbox, metrics=world.metrics, ack_timeout_s=10)
    task = asyncio.create_task(relay.relay_once())
    await eventually(lambda: len(acks) == 1, what="the publish to be sent")

    start = time.monotonic()
    async with world.sessions() as session, session.begin():  # a use case committing meanwhile
        await world.outbox.stage(session, fact("ps-meanwhile"))
    assert time.monotonic() - start < 2, "a write waited for the relay's acks"
    assert not task.done()

    acks[0].set_result(None)
    assert await task == 1
    async with world.sessions() as session:
        assert await world.outbox.pending_count(session) == 1  # the row staged meanwhile waits for the next pass
