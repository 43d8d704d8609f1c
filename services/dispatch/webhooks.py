"""Webhooks: platforms register receivers; task-order events on their own incidents become deliveries.

Dispatch delivers them because it owns what scoping needs: the task order, its incident and who reported
it (`Incident.reported_by`, the platform). It hears the events through its own durable consumer on its own
stream (`dispatch-webhooks-on-dispatch`), not inside the task transitions: a transition never waits for,
or rolls back with, a webhook; only events that were committed and published are delivered; the
consumer only writes delivery rows (the outbox pattern for HTTP) and the delivery loop
(webhook_delivery.py) sends them.
"""
from __future__ import annotations

import uuid

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.dispatch.models import Incident, TaskOrder
from services.dispatch.webhook_models import WebhookDelivery, WebhookIn, WebhookSubscription
from shared import ssrf
from shared.auth import Identity
from shared.bus import Subscription
from shared.db import insert_ignoring_duplicates, utcnow
from shared.errors import Forbidden, NotFound
from shared.events import Envelope, Fact, TaskChanged, TaskOverdue, TaskOverdueV2
from shared.pagination import Keyset, PageRequest
from shared.runtime import Runtime
from shared.webhooks import CE_TYPE, SecretBox, TaskOrderNotice, new_secret

#: TaskChanged's new status → the webhook event ("completed": the unit submitted the finished work)
BY_STATUS = {"dispatched": "task_order.dispatched", "submitted": "task_order.completed",
             "verified": "task_order.verified"}
SUBSCRIPTIONS = Keyset(WebhookSubscription.created_at, WebhookSubscription.id, descending=True)
DELIVERIES = Keyset(WebhookDelivery.created_at, WebhookDelivery.id, descending=True)


def _own(viewer: Identity) -> bool:
    """True for a platform (sees its own), False for an admin (sees all); Forbidden for anyone else."""
    if viewer.role == "platform":
        return True
    if viewer.role == "admin":
        return False
    raise Forbidden("only platform clients (their own) and admins manage webhooks")


async def register(session: AsyncSession, *, viewer: Identity, body: WebhookIn, box: SecretBox,
                   allow: list[ssrf.Network], require_https: bool) -> tuple[WebhookSubscription, str]:
    """Store a platform's receiver after the SSRF guard passed; return it with its fresh secret."""
    if viewer.role != "platform":
        raise Forbidden("only platform clients register webhooks (they hear of their own incidents)")
    await ssrf.check_url(body.url, require_https=require_https, allow=allow)
    secret = new_secret()
    row = WebhookSubscription(id=str(uuid.uuid4()), owner=viewer.username, url=body.url, events=list(body.events),
                              description=body.description, secret_sealed=box.seal(secret), created_at=utcnow())
    session.add(row)
    return row, secret


async def list_subscriptions(session: AsyncSession, *, viewer: Identity,
                             request: PageRequest) -> tuple[list[WebhookSubscription], str | None]:
    stmt = select(WebhookSubscription)
    if _own(viewer):
        stmt = stmt.where(WebhookSubscription.owner == viewer.username)
    return await SUBSCRIPTIONS.page(session, stmt, request)


async def get_subscription(session: AsyncSession, *, viewer: Identity, webhook_id: str) -> WebhookSubscription:
    """One subscription the viewer may see (404 otherwise, so others' ids do not leak)."""
    row = await session.get(WebhookSubscription, webhook_id)
    if row is None or (_own(viewer) and row.owner != viewer.username):
        raise NotFound(f"webhook {webhook_id} not found")
    return row


async def remove(session: AsyncSession, *, viewer: Identity, webhook_id: str) -> None:
    """Delete a subscription with its delivery log (pending deliveries are dropped)."""
    row = await get_subscription(session, viewer=viewer, webhook_id=webhook_id)
    await session.execute(delete(WebhookDelivery).where(WebhookDelivery.subscription_id == row.id))
    await session.delete(row)


async def list_deliveries(session: AsyncSession, *, viewer: Identity, webhook_id: str, status: str | None,
                          request: PageRequest) -> tuple[list[WebhookDelivery], str | None]:
    row = await get_subscription(session, viewer=viewer, webhook_id=webhook_id)
    stmt = select(WebhookDelivery).where(WebhookDelivery.subscription_id == row.id)
    if status:
        stmt = stmt.where(WebhookDelivery.status == status)
    return await DELIVERIES.page(session, stmt, request)


async def fan_out(session: AsyncSession, envelope: Envelope, *, event: str, task_id: str,
                  fact: TaskChanged | TaskOverdue) -> int:
    """Stage one delivery per subscription of the platform that reported the order's incident."""
    task = await session.get(TaskOrder, task_id)
    incident_id = fact.incident_id if isinstance(fact, TaskChanged) else (task.incident_id if task else None)
    if incident_id is None:
        return 0  # an order with no incident (or unknown): no platform to tell
    incident = await session.get(Incident, incident_id)
    if incident is None or not incident.reported_by:
        return 0
    subs = [s for s in (await session.execute(select(WebhookSubscription).where(
        WebhookSubscription.owner == incident.reported_by))).scalars() if event in s.events]
    if not subs:
        return 0
    changed = isinstance(fact, TaskChanged)
    notice = TaskOrderNotice(
        event=event, task_id=task_id, incident_id=incident_id, external_id=incident.external_id,  # type: ignore[arg-type]
        category=fact.category, status=fact.new_status if changed else (task.status if task else "overdue"),
        previous_status=fact.old_status if changed else None, unit_id=fact.unit_id, station_id=fact.station_id,
        at=fact.at, deadline_at=fact.deadline_at, milestone=None if changed else fact.milestone)
    cloud_event = Envelope(id=envelope.id, source="/jiaozhi/dispatch", type=CE_TYPE.format(event=event),
                           subject=task_id, time=envelope.time, data=notice.model_dump(mode="json"))
    body, now = cloud_event.model_dump_json(), utcnow()
    table = WebhookDelivery.__table__  # type: ignore[attr-defined]
    for sub in subs:
        await session.execute(insert_ignoring_duplicates(
            table, session.bind.dialect.name, id=str(uuid.uuid4()), subscription_id=sub.id, event_id=envelope.id,
            event_type=event, task_id=task_id, body=body, status="pending", attempts=0, next_attempt_at=now,
            last_status_code=None, last_error="", log=[], created_at=now, delivered_at=None))
    session.info["webhooks_staged"] = session.info.get("webhooks_staged", 0) + len(subs)
    return len(subs)


def subscription(rt: Runtime) -> Subscription:
    """The durable consumer on dispatch's own stream that turns task events into deliveries."""

    async def on_changed(session: AsyncSession, fact: Fact, envelope: Envelope) -> None:
        assert isinstance(fact, TaskChanged)
        event = BY_STATUS.get(fact.new_status)
        if event is not None and fact.old_status != fact.new_status:
            if await fan_out(session, envelope, event=event, task_id=fact.task_id, fact=fact):
                _wake(rt)

    async def on_overdue(session: AsyncSession, fact: Fact, envelope: Envelope) -> None:
        assert isinstance(fact, TaskOverdue)
        if await fan_out(session, envelope, event="task_order.overdue", task_id=fact.task_id, fact=fact):
            _wake(rt)

    # overdue: v2 (milestone codes) is what dispatch publishes now; v1 may still sit in the stream
    return Subscription("dispatch-webhooks", "dispatch", {TaskChanged: on_changed, TaskOverdue: on_overdue,
                                                          TaskOverdueV2: on_overdue})


def _wake(rt: Runtime) -> None:
    wake = rt.state.get("webhook_wake")
    if wake is not None:
        wake.set()  # early: the rows commit right after; the loop's poll catches any it misses
