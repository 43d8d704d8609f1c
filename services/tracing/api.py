"""Tracing's HTTP door: the catalogue, incident traces, and the source registries (single and :batch)."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError

from services.tracing import registries, service
from services.tracing.catalogue import TracingModel
from services.tracing.mirror import Mirror
from services.tracing.schemas import (
    EnterpriseIn,
    FiredOut,
    HazardIn,
    ModelUpdate,
    PersonIn,
    RoadSectionIn,
    TraceOut,
    VehicleIn,
    VillageIn,
)
from shared.auth import Identity
from shared.batch import MAX_ITEMS, BatchOut, ItemError, ItemResult, batch_body_schema, read_batch, validated
from shared.errors import Conflict, Forbidden, Invalid, NotFound
from shared.pagination import Page, PageDep, page_list
from shared.runtime import CallerDep, Runtime, RuntimeDep
from shared.scope import Scope

router = APIRouter(prefix="/api/v1")
WRITERS = ("admin", "command", "platform")
MIRRORED = ("road-sections", "hazards")  # registries every replica's index holds
RegistryBatchOut = BatchOut[ItemResult]


def _officer(who: Identity) -> None:
    """Refuse a platform client, as the gateway does: a platform writes registries and reads back only those."""
    Scope.of(who, what="the tracing catalogue")


async def _caught_up(rt: Runtime) -> Mirror:
    """This replica's mirror, after reading what other replicas committed (one cheap query if nothing)."""
    mirror: Mirror = rt.state["mirror"]
    async with rt.sessions() as session:
        await mirror.catch_up(session)
    return mirror


@router.get("/tracing/models", response_model=Page[TracingModel], tags=["tracing"])
async def list_models(rt: RuntimeDep, who: CallerDep, page: PageDep) -> Page[TracingModel]:
    """The catalogue of tracing task models (current versions), by id; officers only."""
    _officer(who)
    return page_list((await _caught_up(rt)).models.models, page, key=lambda m: m.id)


@router.get("/tracing/models/{model_id}", response_model=TracingModel, tags=["tracing"])
async def get_model(model_id: str, rt: RuntimeDep, who: CallerDep) -> TracingModel:
    """One tracing model; officers only."""
    _officer(who)
    model = (await _caught_up(rt)).models.get(model_id)
    if model is None:
        raise NotFound(f"tracing model {model_id} not found")
    return model


@router.put("/tracing/models/{model_id}", response_model=TracingModel, tags=["tracing"])
async def update_model(model_id: str, change: ModelUpdate, rt: RuntimeDep, who: CallerDep) -> TracingModel:
    """Admin: change a model's parameters, condition, enabled flag…; validated with its examples; a new version
    (409 if another edit of the same model committed first)."""
    mirror: Mirror = rt.state["mirror"]
    try:
        async with rt.transaction() as session:
            await mirror.catch_up(session)  # edit the latest version, whichever replica saved it
            model = await service.update_model(session, catalogue=mirror.models, model_id=model_id, change=change,
                                               viewer=who)
    except IntegrityError as exc:
        raise Conflict(f"model {model_id} was changed at the same time; read it again and retry") from exc
    await _caught_up(rt)
    return model


@router.get("/incidents/{incident_id}/trace", response_model=TraceOut, tags=["tracing"])
async def incident_trace(incident_id: str, rt: RuntimeDep, who: CallerDep) -> TraceOut:
    """What was found for each of the five sources and which models fired, and why."""
    async with rt.sessions() as session:
        return await service.get_trace(session, viewer=who, incident_id=incident_id)


@router.get("/tracing/incidents/{incident_id}/fired", response_model=Page[FiredOut], tags=["tracing"])
async def fired(incident_id: str, rt: RuntimeDep, who: CallerDep, page: PageDep) -> Page[FiredOut]:
    """The models that fired on an incident and the task orders they issued, by model and entity."""
    async with rt.sessions() as session:
        return await service.fired_page(session, viewer=who, incident_id=incident_id, page=page)


# --- registries --------------------------------------------------------------------------------

async def _put(rt: Runtime, session: Any, name: str, item: BaseModel) -> tuple[Any, bool]:
    if name == "persons":
        return await registries.put_person(session, data=item,  # type: ignore[arg-type]
                                           identity_key=rt.settings.identity_hash_key.get_secret_value())
    if name == "vehicles":
        return await registries.put_vehicle(session, data=item)  # type: ignore[arg-type]
    if name == "enterprises":
        return await registries.put_enterprise(session, data=item)  # type: ignore[arg-type]
    if name == "villages":
        return await registries.put_village(session, data=item)  # type: ignore[arg-type]
    if name == "road-sections":
        return await registries.put_road_section(session, data=item)  # type: ignore[arg-type]
    return await registries.put_hazard(session, data=item)  # type: ignore[arg-type]


def _may_write(who: Identity) -> None:
    if who.role not in WRITERS:
        raise Forbidden("only admin, command or platform callers may write registries")


def _key(name: str, row: Any) -> str:
    return getattr(row, {"persons": "ref", "vehicles": "plate"}.get(name, "id"))


def _register(name: str, schema: type[BaseModel]) -> None:
    """The four routes of one registry: POST one, POST :batch, GET list, GET one."""

    async def create(item: BaseModel, rt: RuntimeDep, who: CallerDep, response: Response) -> Any:
        _may_write(who)
        async with rt.transaction() as session:
            row, created = await _put(rt, session, name, item)
            out = await registries.show(session, row, name)
        if name in MIRRORED:
            await _caught_up(rt)  # this replica's index has it before the answer goes out
        response.status_code = 201 if created else 200
        return out

    create.__annotations__["item"] = Annotated[schema, Body()]  # the registry's own schema, for OpenAPI

    async def batch(request: Request, rt: RuntimeDep, who: CallerDep) -> RegistryBatchOut:
        _may_write(who)
        valid, results = validated(await read_batch(request), schema)
        async with rt.transaction() as session:
            for index, item in valid:
                try:
                    row, created = await _put(rt, session, name, item)
                    results[index] = ItemResult(index=index, status=201 if created else 200, id=_key(name, row))
                except Invalid as exc:  # a value the registry refuses (a plate without letters or digits)
                    results[index] = ItemResult.rejected(index, [ItemError(loc=[], msg=exc.detail)])
        if name in MIRRORED:
            await _caught_up(rt)
        return RegistryBatchOut.of([results[i] for i in sorted(results)])

    async def list_all(rt: RuntimeDep, who: CallerDep, page: PageDep) -> Page[Any]:
        async with rt.sessions() as session:
            items, next_cursor = await registries.get_all(session, name=name, page=page)
        return Page(items=items, next_cursor=next_cursor)

    async def get_one(key: str, rt: RuntimeDep, who: CallerDep) -> Any:
        async with rt.sessions() as session:
            return await registries.get(session, name=name, key=key)

    path = f"/{name}"
    router.add_api_route(path, create, methods=["POST"], tags=["registries"], status_code=201,
                         summary=f"Create or update one of {name} (idempotent on its natural key)")
    router.add_api_route(f"{path}:batch", batch, methods=["POST"], tags=["registries"],
                         response_model=RegistryBatchOut,
                         openapi_extra={"requestBody": batch_body_schema(f"#/components/schemas/{schema.__name__}")},
                         summary=f"Bulk import {name}: JSON array or NDJSON, at most {MAX_ITEMS}, per-item results")
    router.add_api_route(path, list_all, methods=["GET"], tags=["registries"], summary=f"List {name}")
    router.add_api_route(f"{path}/{{key}}", get_one, methods=["GET"], tags=["registries"], summary=f"One of {name}")


for _name, _schema in (("persons", PersonIn), ("vehicles", VehicleIn), ("enterprises", EnterpriseIn),
                       ("villages", VillageIn), ("road-sections", RoadSectionIn), ("hazards", HazardIn)):
    _register(_name, _schema)
