"""Webhook endpoints: platforms register, list and delete receivers and read each one's delivery log."""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from services.dispatch import webhooks
from services.dispatch.config import DispatchSettings
from services.dispatch.webhook_models import AttemptOut, DeliveryOut, WebhookCreated, WebhookIn, WebhookOut
from shared import ssrf
from shared.pagination import Page, PageDep
from shared.runtime import CallerDep, Runtime, RuntimeDep
from shared.webhooks import SecretBox

router = APIRouter(prefix="/api/v1", tags=["webhooks"])


def box_of(rt: Runtime) -> SecretBox:
    """The service's secret box (made once from the settings)."""
    if "webhook_box" not in rt.state:
        settings: DispatchSettings = rt.settings  # type: ignore[assignment]
        rt.state["webhook_box"] = SecretBox(settings.webhook_secret_key.get_secret_value())
    return rt.state["webhook_box"]


def _out(row: webhooks.WebhookSubscription) -> WebhookOut:
    return WebhookOut(id=row.id, url=row.url, events=list(row.events), description=row.description, owner=row.owner,
                      created_at=row.created_at)


@router.post("/webhooks", status_code=201, response_model=WebhookCreated)
async def register_webhook(body: WebhookIn, rt: RuntimeDep, who: CallerDep) -> WebhookCreated:
    """Register a receiver for task-order events on the calling platform's own incidents (platforms only).

    The answer holds the signing secret, once. The URL must be https outside demo and test and reach a public
    address unless its network is allow-listed (JIAOZHI_WEBHOOK_ALLOW); otherwise 422."""
    settings: DispatchSettings = rt.settings  # type: ignore[assignment]
    async with rt.transaction() as session:
        row, secret = await webhooks.register(session, viewer=who, body=body, box=box_of(rt),
                                              allow=ssrf.networks(settings.webhook_allow),
                                              require_https=settings.webhook_require_https)
    return WebhookCreated(**_out(row).model_dump(), secret=secret)


@router.get("/webhooks", response_model=Page[WebhookOut])
async def list_webhooks(rt: RuntimeDep, who: CallerDep, page: PageDep) -> Page[WebhookOut]:
    """The caller's receivers (an admin: everyone's), newest first."""
    async with rt.sessions() as session:
        rows, next_cursor = await webhooks.list_subscriptions(session, viewer=who, request=page)
    return Page(items=[_out(r) for r in rows], next_cursor=next_cursor)


@router.get("/webhooks/{webhook_id}", response_model=WebhookOut)
async def get_webhook(webhook_id: str, rt: RuntimeDep, who: CallerDep) -> WebhookOut:
    """One receiver (404 for another platform's)."""
    async with rt.sessions() as session:
        return _out(await webhooks.get_subscription(session, viewer=who, webhook_id=webhook_id))


@router.delete("/webhooks/{webhook_id}", status_code=204)
async def delete_webhook(webhook_id: str, rt: RuntimeDep, who: CallerDep) -> Response:
    """Delete a receiver with its delivery log; deliveries still pending are dropped."""
    async with rt.transaction() as session:
        await webhooks.remove(session, viewer=who, webhook_id=webhook_id)
    return Response(status_code=204)


@router.get("/webhooks/{webhook_id}/deliveries", response_model=Page[DeliveryOut])
async def list_deliveries(webhook_id: str, rt: RuntimeDep, who: CallerDep, page: PageDep,
                          status: Annotated[Literal["pending", "delivered", "failed"] | None, Query()] = None,
                          ) -> Page[DeliveryOut]:
    """A receiver's delivery log, newest first: each event, its attempts and their outcomes."""
    async with rt.sessions() as session:
        rows, next_cursor = await webhooks.list_deliveries(session, viewer=who, webhook_id=webhook_id,
                                                           status=status, request=page)
    return Page(items=[DeliveryOut(
        id=r.id, event_id=r.event_id, event_type=r.event_type, task_id=r.task_id, status=r.status,
        attempts=r.attempts, next_attempt_at=r.next_attempt_at, last_status_code=r.last_status_code,
        last_error=r.last_error, created_at=r.created_at, delivered_at=r.delivered_at,
        log=[AttemptOut.model_validate(e) for e in r.log]) for r in rows], next_cursor=next_cursor)
