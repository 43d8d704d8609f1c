"""Server-sent events of task orders: each replica follows the DISPATCH stream and fans out to its listeners.

Every replica keeps one ordered JetStream consumer on `dispatch.task.>` that starts at new messages,
so a listener on any replica sees changes made by every replica (events reach the stream through
each replica's outbox after commit). Each listener filters by the caller's jurisdiction.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable

from nats.js.api import DeliverPolicy

from shared.bus import Bus
from shared.events import Envelope, TaskChanged, TaskEscalated, TaskOverdue, TaskOverdueV2
from shared.i18n import DEFAULT, Lang, label

log = logging.getLogger(__name__)

EVENT_NAMES = {TaskChanged.subject: "task.changed", TaskOverdue.subject: "task.overdue",
               TaskOverdueV2.subject: "task.overdue", TaskEscalated.subject: "task.escalated"}
#: payload fields holding a code, and the label group that names it for a person
LABELLED = {"category": "category", "old_status": "task_status", "new_status": "task_status"}


class TaskFeed:
    """Fans out task events from the bus to the open SSE connections of this replica."""

    def __init__(self, *, queue_size: int = 1000) -> None:
        self.listeners: set[asyncio.Queue[Envelope]] = set()
        self.queue_size = queue_size
        self.ready = asyncio.Event()

    async def run(self, bus: Bus) -> None:
        """Follow `dispatch.task.>` from now on until cancelled (the ordered consumer recovers from gaps)."""
        await bus.ensure_stream("dispatch")
        assert bus.js is not None
        sub = None
        while sub is None:
            try:
                sub = await bus.js.subscribe("dispatch.task.>", stream="DISPATCH", ordered_consumer=True,
                                             deliver_policy=DeliverPolicy.NEW, idle_heartbeat=5.0)
            except Exception as exc:  # noqa: BLE001 - broker away: try again (stream named: no look-up needed)
                log.warning("task feed: %s", exc)
                await asyncio.sleep(1)
        self.ready.set()
        try:
            async for msg in sub.messages:
                try:
                    envelope = Envelope.model_validate_json(msg.data)
                except ValueError:
                    continue
                for queue in list(self.listeners):
                    with contextlib.suppress(asyncio.QueueFull):  # a stalled client misses events, not the rest
                        queue.put_nowait(envelope)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    @contextlib.contextmanager
    def listen(self) -> AsyncIterator[asyncio.Queue[Envelope]]:  # type: ignore[misc]
        """A queue receiving every task event while the block runs."""
        queue: asyncio.Queue[Envelope] = asyncio.Queue(self.queue_size)
        self.listeners.add(queue)
        try:
            yield queue
        finally:
            self.listeners.discard(queue)


def sse_frame(envelope: Envelope, lang: Lang = DEFAULT) -> str:
    """One server-sent event: id = event id, event = task.changed|task.overdue|task.escalated, data = JSON
    (codes as sent, with `<field>_label` texts in the listener's language)."""
    data = {"subject": envelope.type, "time": envelope.time.isoformat(), **envelope.data}
    data |= {f"{k}_label": label(group, data[k], lang) for k, group in LABELLED.items() if data.get(k)}
    name = EVENT_NAMES.get(envelope.type, envelope.type)
    return f"id: {envelope.id}\nevent: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def moved_frame(envelope: Envelope) -> str:
    """`task.moved`: an order left the caller's jurisdiction (reassigned elsewhere), so the app can drop it.

    Only the order's id and the time: not where it went, who moved it or why.
    """
    data = {"task_id": envelope.data["task_id"], "time": envelope.time.isoformat()}
    return f"id: {envelope.id}\nevent: task.moved\ndata: {json.dumps(data)}\n\n"


async def frames(queue: asyncio.Queue[Envelope], visible: Callable[[dict], bool], *,
                 heartbeat_s: float, lang: Lang = DEFAULT) -> AsyncIterator[str]:
    """The SSE body: the events the caller may see, `task.moved` when one of its orders is reassigned away,
    and a comment line every `heartbeat_s` when quiet."""
    yield "retry: 3000\n: connected\n\n"
    while True:
        try:
            envelope = await asyncio.wait_for(queue.get(), heartbeat_s)
        except TimeoutError:
            yield ": heartbeat\n\n"
            continue
        if visible(envelope.data):
            yield sse_frame(envelope, lang)
        elif (previous := envelope.data.get("previous_unit_id")) and visible({"unit_id": previous}):
            yield moved_frame(envelope)
