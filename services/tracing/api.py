"""Tracing's HTTP door: the catalogue and what fired on an incident."""
from __future__ import annotations

from fastapi import APIRouter

from services.tracing import service
from services.tracing.catalogue import TracingModel
from services.tracing.models import FiredOut
from shared.runtime import CallerDep, RuntimeDep

router = APIRouter(prefix="/api/v1")


@router.get("/tracing/models", response_model=list[TracingModel], tags=["tracing"])
async def list_models(rt: RuntimeDep, who: CallerDep) -> list[TracingModel]:
    """The catalogue of tracing task models."""
    return rt.state["catalogue"].models


@router.get("/tracing/incidents/{incident_id}/fired", response_model=list[FiredOut], tags=["tracing"])
async def fired(incident_id: str, rt: RuntimeDep, who: CallerDep) -> list[FiredOut]:
    """The models that fired on an incident and the task orders they issued."""
    async with rt.sessions() as session:
        rows = await service.fired_on(session, incident_id=incident_id)
    return [FiredOut(model_id=r.model_id, entity_ref=r.entity_ref, task_id=r.task_id, reason=r.reason) for r in rows]
