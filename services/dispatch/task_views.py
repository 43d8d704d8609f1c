"""Task orders as the API shows them (texts in the reader's language) and the actions taken on them."""
from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, field_validator, model_validator
from pydantic import Field as PField

from services.dispatch.texts import LineOut, MilestoneOut
from shared.events import Category
from shared.i18n import Lang


class HistoryOut(BaseModel):
    """One step of a task order's life."""

    action: str
    from_status: str | None
    to_status: str
    by: str
    at: dt.datetime
    note: str
    milestone: str | None = None
    evidence: list[str] = []


class TaskOut(BaseModel):
    """A task order with its routing reason and history."""

    id: str
    incident_id: str | None
    model_id: str
    source: str
    entity_ref: str
    category: Category
    station_id: str | None
    unit_id: str
    status: str
    deadline_at: dt.datetime
    model_version: int | None = None
    lang: Lang = PField("zh-CN", description="the language of the texts (Accept-Language or lang=)")
    model_name: str | None = None
    category_label: str | None = None
    status_label: str | None = None
    key_points: list[LineOut]
    milestones: list[MilestoneOut]
    measures: list[LineOut]
    routing_reason: str
    created_at: dt.datetime
    updated_at: dt.datetime
    version: int = PField(description="bumped by every change")
    overdue: bool = PField(False, description="the deadline passed before the order was submitted")
    overdue_at: dt.datetime | None = None
    escalated_at: dt.datetime | None = None
    escalated_to: str | None = PField(None, description="the supervising unit the overdue order was escalated to")
    history: list[HistoryOut] = []


# --- task actions -------------------------------------------------------------------------------

Action = Literal["accept", "start", "complete_milestone", "submit", "verify", "return", "reassign"]


class TransitionIn(BaseModel):
    """One step of a task order's loop."""

    action: Action
    note: str = PField("", max_length=2000, description="why; required for return and reassign")
    milestone: str | None = PField(None, max_length=200, description="complete_milestone: which one")
    unit_id: str | None = PField(None, max_length=64, description="reassign: the receiving unit")
    evidence: list[str] = PField([], max_length=20, description="references to photos, documents")

    @field_validator("evidence")
    @classmethod
    def _short_refs(cls, value: list[str]) -> list[str]:
        if any(not 0 < len(ref) <= 500 for ref in value):
            raise ValueError("each evidence reference is 1 to 500 characters")
        return value


class BulkIn(BaseModel):
    """Reassign or extend many task orders at once (command staff)."""

    action: Literal["reassign", "extend"]
    task_ids: list[str] = PField(min_length=1, max_length=500)
    unit_id: str | None = PField(None, max_length=64, description="reassign: the receiving unit")
    deadline_at: dt.datetime | None = PField(None, description="extend: the new deadline")
    extend_by: dt.timedelta | None = PField(None, description="extend: added to each deadline (seconds or ISO 8601)")
    note: str = PField(min_length=1, max_length=2000, description="why")

    @model_validator(mode="after")
    def _complete(self) -> BulkIn:
        if self.action == "reassign" and not self.unit_id:
            raise ValueError("reassign needs unit_id")
        if self.action == "extend":
            if (self.deadline_at is None) == (self.extend_by is None):
                raise ValueError("extend needs exactly one of deadline_at and extend_by")
            if self.deadline_at is not None and self.deadline_at.tzinfo is None:
                raise ValueError("deadline_at needs an offset")
            if self.extend_by is not None and self.extend_by.total_seconds() <= 0:
                raise ValueError("extend_by must be positive")
        return self


class BulkItemResult(BaseModel):
    """The outcome of a bulk action on one task order."""

    task_id: str
    status: int = PField(description="200 done, 404 not in your jurisdiction, 409 not allowed now, 422 invalid")
    detail: str | None = None
    task_status: str | None = None


class BulkOut(BaseModel):
    """Per-task results of a bulk action."""

    results: list[BulkItemResult]
    succeeded: int
    failed: int
