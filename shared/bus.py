"""NATS JetStream: streams per owner, the outbox relay, and idempotent durable pull consumers."""
from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.acks import AckWindow
from shared.events import Envelope, Fact, stream_name
from shared.lifecycle import bounded, cancel_and_wait
from shared.observability import Metrics, reset_request_id, set_request_id
from shared.outbox import Outbox
from shared.telemetry import Telemetry, inject_current, nats_span

log = logging.getLogger(__name__)
_access = logging.getLogger("jiaozhi.access")

Handler = Callable[[AsyncSession, Fact, Envelope], Awaitable[None]]


def stop_if_cancelled() -> None:
    """End a loop whose cancellation was swallowed below it.

    On Python 3.11 `asyncio.wait_for` (used by nats-py's fetch and by the relay's wait) returns normally
    when its inner future finishes in the same tick as the cancel; the loop would then run on forever.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class Bus:
    """One NATS connection per process; connects in the background and keeps reconnecting."""

    def __init__(self, url: str, *, name: str, options: dict[str, Any] | None = None) -> None:
        self.url = url
        self.name = name
        self.options = options or {}  # credentials, inbox prefix, TLS: `Settings.nats_options()`
        self.nc: NATS | None = None
        self.js: JetStreamContext | None = None
        self.connected = asyncio.Event()
        self._connecting: asyncio.Task[None] | None = None

    async def connect(self, *, wait: float | None = None) -> None:
        """Connect, retrying until it works (or `close`); with `wait`, stop waiting after that many seconds."""
        task = self._connecting = asyncio.create_task(self._connect_forever(), name=f"{self.name}:connect")
        if wait is not None:
            done, _ = await asyncio.wait({task}, timeout=wait)
            if not done:
                log.warning("NATS not reachable yet at %s; still trying", self.url)

    async def _connect_forever(self) -> None:
        while self.nc is None:
            try:
                self.nc = await nats.connect(
                    self.url, name=self.name, max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                    connect_timeout=2, allow_reconnect=True,
                    error_cb=self._on_error, disconnected_cb=self._on_disconnect, reconnected_cb=self._on_reconnect,
                    **self.options,
                )
            except Exception as exc:  # noqa: BLE001 - keep trying whatever went wrong
                log.warning("cannot connect to NATS at %s: %s", self.url, exc)
                await asyncio.sleep(1)
        self.js = self.nc.jetstream(timeout=5)
        self.connected.set()

    async def _on_error(self, exc: Exception) -> None:
        log.debug("nats: %s", exc)

    async def _on_disconnect(self) -> None:
        log.warning("disconnected from NATS")

    async def _on_reconnect(self) -> None:
        log.info("reconnected to NATS")

    @property
    def is_ready(self) -> bool:
        """Whether the connection is up now."""
        return self.nc is not None and self.nc.is_connected

    async def ensure_stream(self, owner: str) -> None:
        """Create the owner's stream if missing (file storage, de-duplication window for Nats-Msg-Id)."""
        await self.connected.wait()
        assert self.js is not None
        config = StreamConfig(
            name=stream_name(owner), subjects=[f"{owner}.>"], storage=StorageType.FILE, duplicate_window=600.0
        )
        try:
            await self.js.stream_info(config.name)
        except NotFoundError:
            try:
                await self.js.add_stream(config)
            except Exception as exc:  # noqa: BLE001 - another process may have created it first
                log.info("stream %s: %s", config.name, exc)

    async def close(self, within_s: float = 5.0) -> bool:
        """Stop connecting and close the connection within `within_s`; unacked messages are redelivered anyway.

        Bounded without `asyncio.wait_for`, which would wait for ever on a close that ignores its cancel.
        Returns False if the close had to be cut.
        """
        if self._connecting is not None and not self._connecting.done():
            await cancel_and_wait([self._connecting], min(within_s, 1.0))
        if self.nc is None or self.nc.is_closed:
            return True
        return await bounded(self.nc.close(), seconds=within_s, what="closing NATS")


class OutboxRelay:
    """Publishes committed outbox rows with Nats-Msg-Id = event id, then marks them sent.

    Woken right after a commit that staged events; also polls, so rows left by a crash or by
    another replica go out too. JetStream drops a re-publish of the same id within its window.

    Pipelined: a pass claims up to `batch` rows in seq order, sends them all without waiting (at most
    `in_flight` unacknowledged at a time), collects the acks, and marks the acknowledged rows sent in
    one UPDATE (see `relay_once` for the transactions). A row whose publish failed, or still has no ack
    once no ack at all arrived for `ack_timeout_s`, stays unsent for the next pass. Order: one connection
    sends the rows in seq order, so the stream holds them in seq order, except that a row whose publish
    failed lands after the rows published behind it when it is retried (as with the former relay).
    """

    def __init__(self, bus: Bus, sessions: async_sessionmaker[AsyncSession], outbox: Outbox, *,
                 metrics: Metrics, poll_s: float = 0.5, batch: int = 2000, in_flight: int = 256,
                 ack_timeout_s: float = 5.0, telemetry: Telemetry | None = None) -> None:
        self.bus = bus
        self.telemetry = telemetry or Telemetry("relay")
        self.sessions = sessions
        self.outbox = outbox
        self.metrics = metrics
        self.poll_s = poll_s
        self.batch = batch
        self.in_flight = in_flight
        self.ack_timeout_s = ack_timeout_s
        self._wake = asyncio.Event()

    def notify(self) -> None:
        """Say that new rows were committed."""
        self._wake.set()

    async def run(self) -> None:
        """Relay until cancelled."""
        await self.bus.connected.wait()
        while True:
            stop_if_cancelled()
            try:
                sent = await self.relay_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the broker or database may be briefly away
                log.warning("outbox relay: %s", exc)
                sent = 0
                await asyncio.sleep(self.poll_s)
            if sent >= self.batch:
                continue
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.poll_s)
            except TimeoutError:
                pass

    async def relay_once(self) -> int:
        """Publish one batch; return how many rows went out (were acknowledged and marked).

        On PostgreSQL the claiming transaction (FOR UPDATE SKIP LOCKED) stays open until the acks are in
        and the rows marked, so another replica skips them. On SQLite (one process, one connection for
        the whole service) the rows are read in a short transaction and marked in another, so requests
        are not kept waiting for the broker's acks; a crash in between re-publishes, as it would anyway.
        """
        async with self.sessions() as session:
            if session.bind.dialect.name == "postgresql":
                async with session.begin():
                    rows = await self.outbox.unsent(session, self.batch)
                    acked = await self.publish(rows) if rows else []
                    if acked:
                        await self.outbox.mark_sent(session, [row.seq for row in acked])
            else:
                async with session.begin():
                    rows = await self.outbox.unsent(session, self.batch)
                acked = await self.publish(rows) if rows else []
                if acked:
                    async with session.begin():
                        await self.outbox.mark_sent(session, [row.seq for row in acked])
        for row in acked:
            self.metrics.events_published.labels(row.subject).inc()
        if len(acked) < len(rows):
            log.warning("outbox relay: %d of %d publishes not acknowledged; they stay unsent for the next pass",
                        len(rows) - len(acked), len(rows))
        return len(acked)

    async def publish(self, rows: list[Any]) -> list[Any]:
        """Send rows in order with at most `in_flight` awaiting their ack; return the acknowledged rows, in order.

        Stops sending at the first failure to send (the connection is away); publishes still without an
        ack once no ack at all has arrived for `ack_timeout_s` count as failed.
        """
        js = self.bus.js
        assert js is not None
        acks = AckWindow(self.in_flight, self.ack_timeout_s)
        futures: list[asyncio.Future[Any]] = []
        try:
            for row in rows:
                if not await acks.slot():
                    break
                try:
                    future = await self._send(js, row)
                except Exception as exc:  # noqa: BLE001 - not sent: this row and the rest wait for the next pass
                    log.warning("outbox relay: publishing %s: %s", row.event_id, exc)
                    break
                acks.track(future)
                futures.append(future)
            await acks.drain()
        finally:
            for future in futures:
                if not future.done():
                    future.cancel()  # frees nats-py's pending slot; the row stays unsent
        acked = []
        for row, future in zip(rows, futures, strict=False):
            if future.cancelled():
                continue
            if (error := future.exception()) is not None:
                log.info("outbox relay: %s not stored: %s", row.event_id, error)
                continue
            acked.append(row)
        return acked

    async def _send(self, js: JetStreamContext, row: Any) -> asyncio.Future[Any]:
        """Publish one row; when tracing, in a producer span (child of the staging context) that travels along."""
        headers = json.loads(row.headers or "{}") | {"Nats-Msg-Id": row.event_id}
        with nats_span(self.telemetry, "publish", row.subject, row.event_id, headers):
            if self.telemetry.on:
                inject_current(headers)
            return await js.publish_async(row.subject, row.body.encode(), headers=headers)


@dataclass
class Subscription:
    """A durable pull consumer `<consumer>-on-<owner>` and the handlers for the subjects it wants."""

    consumer: str
    owner: str
    handlers: dict[type[Fact], Handler] = field(default_factory=dict)

    @property
    def durable(self) -> str:
        return f"{self.consumer}-on-{self.owner}"


class Consumer:
    """Runs a subscription: each event handled in one transaction with its inbox row, acked after commit."""

    def __init__(self, bus: Bus, sessions: async_sessionmaker[AsyncSession], outbox: Outbox, sub: Subscription, *,
                 relay: OutboxRelay | None, metrics: Metrics, batch: int = 100,
                 telemetry: Telemetry | None = None) -> None:
        self.bus = bus
        self.telemetry = telemetry or Telemetry(sub.consumer)
        self.sessions = sessions
        self.outbox = outbox
        self.sub = sub
        self.relay = relay
        self.metrics = metrics
        self.batch = batch
        self.by_subject = {fact.subject: (fact, handler) for fact, handler in sub.handlers.items()}

    async def run(self) -> None:
        """Fetch and handle until cancelled."""
        await self.bus.ensure_stream(self.sub.owner)
        assert self.bus.js is not None
        psub = None
        stream = stream_name(self.sub.owner)
        config = ConsumerConfig(name=self.sub.durable, durable_name=self.sub.durable, ack_policy=AckPolicy.EXPLICIT,
                                deliver_policy=DeliverPolicy.ALL, ack_wait=30, max_ack_pending=1000,
                                filter_subjects=sorted(self.by_subject))
        while psub is None:
            try:
                # create, or update an existing durable whose subject filters an older release set
                await self.bus.js.add_consumer(stream, config)
                psub = await self.bus.js.pull_subscribe_bind(durable=self.sub.durable, stream=stream)
            except Exception as exc:  # noqa: BLE001 - broker away; try again
                log.warning("subscribe %s: %s", self.sub.durable, exc)
                await asyncio.sleep(1)
        while True:
            stop_if_cancelled()
            try:
                msgs = await psub.fetch(self.batch, timeout=1)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - reconnecting; keep the loop alive
                log.debug("fetch %s: %s", self.sub.durable, exc)
                await asyncio.sleep(0.5)
                continue
            await self.handle_batch(msgs)

    async def handle_batch(self, msgs: list[Msg]) -> None:
        """Handle a fetched batch in one transaction (one commit, not one per event), then ack it.

        If anything in the batch fails, the transaction rolls back and each message is handled
        on its own, so one bad event cannot hold back the others.
        """
        if len(msgs) == 1:
            await self.handle(msgs[0])
            return
        try:
            envelopes = [Envelope.model_validate_json(m.data) for m in msgs]
            async with self.sessions() as session:
                async with session.begin():
                    outcomes = []
                    for envelope, msg in zip(envelopes, msgs, strict=True):
                        outcomes.append(await self._apply(session, envelope, msg.headers))
                staged = session.info.get("staged_events", 0)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - fall back to one transaction per message
            log.info("batch of %d failed (%s); handling one by one", len(msgs), exc)
            for msg in msgs:
                await self.handle(msg)
            return
        if staged and self.relay is not None:
            self.relay.notify()
        await asyncio.gather(*(m.ack() for m in msgs))
        for envelope, outcome in zip(envelopes, outcomes, strict=True):
            self.metrics.events_consumed.labels(envelope.type, outcome).inc()

    async def _apply(self, session: AsyncSession, envelope: Envelope, headers: dict[str, str] | None) -> str:
        """Claim the event in the inbox and run its handler in the session's transaction.

        Each event keeps its own request id and, when tracing, its own consumer span (child of the relay's
        publish span carried in its headers), in a batch too; so events it stages carry its trace on.
        """
        entry = self.by_subject.get(envelope.type)
        if entry is None:
            return "ignored"
        fact_type, handler = entry
        token = set_request_id((headers or {}).get("X-Request-ID") or envelope.id)
        started = time.perf_counter()
        try:
            with nats_span(self.telemetry, "process", envelope.type, envelope.id, headers,
                           **{"messaging.consumer.group.name": self.sub.durable}):
                fresh = await self.outbox.claim_for(session, consumer=self.sub.consumer, event_id=envelope.id)
                if fresh:
                    await handler(session, envelope.payload(fact_type), envelope)
                if _access.isEnabledFor(logging.INFO):  # the access log's line per event, in its span
                    _access.info("%s %s %s", envelope.type, envelope.id, "handled" if fresh else "duplicate")
                return "handled" if fresh else "duplicate"
        finally:
            self.metrics.handle_latency.labels(envelope.type).observe(time.perf_counter() - started)
            reset_request_id(token)

    async def handle(self, msg: Msg) -> None:
        """Handle one message: parse, claim in the inbox, apply, commit, then ack."""
        try:
            envelope = Envelope.model_validate_json(msg.data)
        except ValidationError as exc:
            log.error("dropping malformed message on %s: %s", msg.subject, exc.errors()[:3])
            self.metrics.events_consumed.labels(msg.subject, "malformed").inc()
            await msg.term()
            return
        token = set_request_id((msg.headers or {}).get("X-Request-ID") or envelope.id)
        try:
            async with self.sessions() as session:
                async with session.begin():
                    outcome = await self._apply(session, envelope, msg.headers)
                staged = session.info.get("staged_events", 0)
            if staged and self.relay is not None:
                self.relay.notify()
            await msg.ack()
            self.metrics.events_consumed.labels(envelope.type, outcome).inc()
        except ValidationError as exc:
            log.error("event %s does not match its contract: %s", envelope.id, exc.errors()[:3])
            self.metrics.events_consumed.labels(envelope.type, "malformed").inc()
            await msg.term()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("handling %s %s failed; will be redelivered", envelope.type, envelope.id)
            self.metrics.events_consumed.labels(envelope.type, "failed").inc()
            try:
                await msg.nak(delay=1)
            except Exception:  # noqa: BLE001 - no ack means redelivery after ack_wait anyway
                pass
        finally:
            reset_request_id(token)
