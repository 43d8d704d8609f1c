"""Server-sent events of task orders: each replica follows the DISPATCH stream and fans out to its listeners.

Every replica keeps one ordered JetStream consumer on `dispatch.task.>` that starts at new messages,
so a listener on any replica sees changes made by every replica (events reach the stream through
each replica's outbox after commit). Each listener filters by the caller's jurisdiction.

Resumable: each event's SSE id is its DISPATCH stream sequence (the same on every replica). A client that
reconnects with `Last-Event-ID: N` first gets the task events after N that the stream still holds (read
with direct gets, at most `sse_resume_window` messages back), then the live ones; nothing twice. If N is
further back than that, it gets one `stream.reset` event (reload the list, then listen on).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable

from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError

from shared.bus import Bus
from shared.events import Envelope, TaskChanged, TaskEscalated, TaskOverdue, TaskOverdueV2
from shared.i18n import DEFAULT, Lang, label

log = logging.getLogger(__name__)

STREAM = "DISPATCH"
Sequenced = tuple[int, Envelope]  # an event and its DISPATCH stream sequence

EVENT_NAMES = {TaskChanged.subject: "task.changed", TaskOverdue.subject: "task.overdue",
               TaskOverdueV2.subject: "task.overdue", TaskEscalated.subject: "task.escalated"}
#: payload fields holding a code, and the label group that names it for a person
LABELLED = {"category": "category", "old_status": "task_status", "new_status": "task_status"}


class TaskFeed:
    """Fans out task events from the bus to the open SSE connections of this replica."""

    def __init__(self, *, queue_size: int = 1000) -> None:
        self.listeners: set[asyncio.Queue[Sequenced]] = set()
        self.queue_size = queue_size
        self.ready = asyncio.Event()
        self.bus: Bus | None = None

    async def run(self, bus: Bus) -> None:
        """Follow `dispatch.task.>` from now on until cancelled (the ordered consumer recovers from gaps)."""
        await bus.ensure_stream("dispatch")
        assert bus.js is not None
        self.bus = bus
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
                item = (msg.metadata.sequence.stream, envelope)
                for queue in list(self.listeners):
                    with contextlib.suppress(asyncio.QueueFull):  # a stalled client misses events, not the rest
                        queue.put_nowait(item)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def backlog(self, after: int, window: int) -> list[Sequenced] | None:
        """The task events after stream sequence `after`, oldest first; None if the stream no longer holds them
        all or they lie more than `window` messages back."""
        assert self.bus is not None and self.bus.js is not None, "the feed has not started"
        state = (await self.bus.js.stream_info(STREAM)).state
        if after >= state.last_seq:
            return []
        if after + 1 < state.first_seq or state.last_seq - after > window:
            return None
        found: list[Sequenced] = []
        seq = after + 1
        while seq <= state.last_seq:
            try:
                msg = await self.bus.js.get_msg(STREAM, seq, subject="dispatch.task.>", next=True)
            except NotFoundError:
                break
            if msg.seq is None or msg.seq > state.last_seq:
                break
            with contextlib.suppress(ValueError):
                found.append((msg.seq, Envelope.model_validate_json(msg.data or b"")))
            seq = msg.seq + 1
        return found

    @contextlib.contextmanager
    def listen(self) -> AsyncIterator[asyncio.Queue[Sequenced]]:  # type: ignore[misc]
        """A queue receiving every task event (with its stream sequence) while the block runs."""
        queue: asyncio.Queue[Sequenced] = asyncio.Queue(self.queue_size)
        self.listeners.add(queue)
        try:
            yield queue
        finally:
            self.listeners.discard(queue)


def sse_frame(seq: int, envelope: Envelope, lang: Lang = DEFAULT) -> str:
    """One server-sent event: id = stream sequence, event = task.changed|task.overdue|task.escalated, data = JSON
    (with `event_id`, the envelope's id; codes as sent, with `<field>_label` texts in the listener's language)."""
    data = {"subject": envelope.type, "time": envelope.time.isoformat(), "event_id": envelope.id, **envelope.data}
    data |= {f"{k}_label": label(group, data[k], lang) for k, group in LABELLED.items() if data.get(k)}
    name = EVENT_NAMES.get(envelope.type, envelope.type)
    return f"id: {seq}\nevent: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


RESET_FRAME = "event: stream.reset\ndata: {\"reason\": \"Last-Event-ID is older than the stream keeps\"}\n\n"


def moved_frame(seq: int, envelope: Envelope) -> str:
    """`task.moved`: an order left the caller's jurisdiction (reassigned elsewhere), so the app can drop it.

    Only the order's id and the time: not where it went, who moved it or why.
    """
    data = {"task_id": envelope.data["task_id"], "time": envelope.time.isoformat()}
    return f"id: {seq}\nevent: task.moved\ndata: {json.dumps(data)}\n\n"


def frame_for(seq: int, envelope: Envelope, visible: Callable[[dict], bool], lang: Lang = DEFAULT) -> str | None:
    """The caller's frame for one event, or None if it is not theirs to see."""
    if visible(envelope.data):
        return sse_frame(seq, envelope, lang)
    if (previous := envelope.data.get("previous_unit_id")) and visible({"unit_id": previous}):
        return moved_frame(seq, envelope)
    return None


async def frames(queue: asyncio.Queue[Sequenced], visible: Callable[[dict], bool], *, heartbeat_s: float,
                 backlog: list[Sequenced] | None = None, resumed: bool = False,
                 lang: Lang = DEFAULT) -> AsyncIterator[str]:
    """The SSE body: first the missed events of a resumed stream (`backlog`; None: too far back, so `stream.reset`),
    then the live events the caller may see, `task.moved` when one of its orders is reassigned away, and a
    comment line every `heartbeat_s` when quiet. No event twice: live ones up to the backlog's last are skipped."""
    yield "retry: 3000\n: connected\n\n"
    last = 0
    if resumed and backlog is None:
        yield RESET_FRAME
    for seq, envelope in backlog or []:
        last = seq
        if (frame := frame_for(seq, envelope, visible, lang)) is not None:
            yield frame
    while True:
        try:
            seq, envelope = await asyncio.wait_for(queue.get(), heartbeat_s)
        except TimeoutError:
            yield ": heartbeat\n\n"
            continue
        if seq > last and (frame := frame_for(seq, envelope, visible, lang)) is not None:
            yield frame
