"""NATS JetStream: streams per owner, the outbox relay, and idempotent durable pull consumers."""
from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import nats
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.acks import AckWindow
from shared.events import Envelope, Fact, stream_name
from shared.lifecycle import bounded, cancel_and_wait
from shared.observability import Metrics
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


@dataclass(frozen=True)
class StreamLimits:
    """How each owner's stream is kept (from the settings: `StreamLimits.of(settings)`)."""

    replicas: int = 1
    max_age_s: float = 30 * 86400.0
    max_bytes: int = 1 << 30
    duplicate_window_s: float = 600.0

    @classmethod
    def of(cls, settings: Any) -> StreamLimits:
        return cls(replicas=settings.stream_replicas, max_age_s=settings.stream_max_age_days * 86400,
                   max_bytes=settings.stream_max_bytes, duplicate_window_s=settings.stream_duplicate_window_s)

    def config(self, owner: str) -> StreamConfig:
        """The owner's stream: its subjects, file storage, these limits (oldest events go first)."""
        return StreamConfig(name=stream_name(owner), subjects=[f"{owner}.>"], storage=StorageType.FILE,
                            num_replicas=self.replicas, max_age=self.max_age_s, max_bytes=self.max_bytes,
                            duplicate_window=self.duplicate_window_s, discard=DiscardPolicy.OLD)


class Bus:
    """One NATS connection per process; connects in the background and keeps reconnecting."""

    def __init__(self, url: str, *, name: str, options: dict[str, Any] | None = None,
                 streams: StreamLimits | None = None) -> None:
        self.url = url
        self.name = name
        self.options = options or {}  # credentials, inbox prefix, TLS: `Settings.nats_options()`
        self.streams = streams or StreamLimits()
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

    async def ensure_stream(self, owner: str, *, own: bool = False) -> None:
        """Create the owner's stream if missing; with `own` (the owner itself) bring an existing stream's limits
        to the configured ones (`StreamLimits`)."""
        await self.connected.wait()
        assert self.js is not None
        config = self.streams.config(owner)
        try:
            have = (await self.js.stream_info(config.name)).config
        except NotFoundError:
            try:
                await self.js.add_stream(config)
            except Exception as exc:  # noqa: BLE001 - another process may have created it first
                log.info("stream %s: %s", config.name, exc)
            return
        if not own:
            return
        wanted = (config.num_replicas, config.max_age, config.max_bytes, config.duplicate_window)
        if (have.num_replicas, have.max_age, have.max_bytes, have.duplicate_window) != wanted:
            try:
                await self.js.update_stream(config)
                log.info("stream %s: limits updated to %s", config.name, wanted)
            except Exception as exc:  # noqa: BLE001 - e.g. more replicas than servers: keep the stream as it is
                log.warning("stream %s: cannot apply limits %s: %s", config.name, wanted, exc)

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
