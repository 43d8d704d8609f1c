"""Webhook tables (a platform's subscriptions and the deliveries owed to them) and their API schemas."""
from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic import Field as PField
from sqlalchemy import JSON, Column, Text, UniqueConstraint
from sqlmodel import Field

from services.dispatch.models import Table
from shared.db import timestamp_field
from shared.webhooks import EventType

DELIVERY_STATUSES = ("pending", "delivered", "failed")


class WebhookSubscription(Table, table=True):
    """A platform's receiver URL and the event types it wants; the signing secret only encrypted."""

    __tablename__ = "webhook_subscription"
    id: str = Field(primary_key=True, max_length=64)
    owner: str = Field(index=True, max_length=200)  # the platform client's username: it hears of its incidents
    url: str = Field(max_length=2000)
    events: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    description: str = ""
    secret_sealed: str = Field(sa_column=Column(Text, nullable=False))
    created_at: dt.datetime = timestamp_field(nullable=False, index=True)


class WebhookDelivery(Table, table=True):
    """One CloudEvent owed to one subscription (an outbox row for HTTP): pending until delivered or given up."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (UniqueConstraint("subscription_id", "event_id"),)
    id: str = Field(primary_key=True, max_length=64)
    subscription_id: str = Field(index=True, max_length=64)
    event_id: str = Field(max_length=64)  # the CloudEvent id = webhook-id (receivers de-duplicate on it)
    event_type: str
    task_id: str
    body: str = Field(sa_column=Column(Text, nullable=False))  # the CloudEvent as sent, byte for byte
    status: str = Field(index=True)
    attempts: int = 0
    next_attempt_at: dt.datetime | None = timestamp_field(nullable=True, index=True)
    last_status_code: int | None = None
    last_error: str = ""
    log: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))  # one entry per attempt
    created_at: dt.datetime = timestamp_field(nullable=False, index=True)
    delivered_at: dt.datetime | None = timestamp_field(nullable=True)


class WebhookIn(BaseModel):
    """A receiver to register: where, and which of the platform's task-order events."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "url": "https://platform.example.org/hooks/jiaozhi",
        "events": ["task_order.dispatched", "task_order.completed", "task_order.verified", "task_order.overdue"],
        "description": "county platform, production receiver"}]})
    url: str = PField(min_length=8, max_length=2000, description="https outside demo and test; a public address "
                                                                 "unless allow-listed (JIAOZHI_WEBHOOK_ALLOW)")
    events: list[EventType] = PField(min_length=1, max_length=4)
    description: str = PField("", max_length=200)

    @field_validator("events")
    @classmethod
    def _unique(cls, events: list[str]) -> list[str]:
        return sorted(set(events))


class WebhookOut(BaseModel):
    """A registered receiver (never its secret)."""

    id: str
    url: str
    events: list[str]
    description: str
    owner: str
    created_at: dt.datetime


class WebhookCreated(WebhookOut):
    """The receiver just registered, with its signing secret: shown this once, keep it."""

    secret: str = PField(description="verify each delivery's webhook-signature with it (Standard Webhooks)")


class AttemptOut(BaseModel):
    """One delivery attempt."""

    at: dt.datetime
    status_code: int | None = None
    error: str = ""
    took_ms: float


class DeliveryOut(BaseModel):
    """One event owed to a receiver and what became of it."""

    id: str
    event_id: str
    event_type: str
    task_id: str
    status: str
    attempts: int
    next_attempt_at: dt.datetime | None
    last_status_code: int | None
    last_error: str
    created_at: dt.datetime
    delivered_at: dt.datetime | None
    log: list[AttemptOut]
