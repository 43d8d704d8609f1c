"""Classification's HTTP door: features, runs."""
from __future__ import annotations

from fastapi import APIRouter, Response

from services.classification import service
from services.classification.models import FeaturesIn, RunIn, RunOut
from shared.errors import Forbidden
from shared.runtime import CallerDep, RuntimeDep

router = APIRouter(prefix="/api/v1")


@router.put("/stations/{station_id}/features", status_code=204, tags=["classification"])
async def put_features(station_id: str, data: FeaturesIn, rt: RuntimeDep, who: CallerDep) -> Response:
    """Import precomputed features of a station for a period (admin, command)."""
    if not who.sees_whole_district:
        raise Forbidden("only admin and command staff import features")
    async with rt.transaction() as session:
        await service.put_features(session, station_id=station_id, data=data)
    return Response(status_code=204)


@router.post("/classification/runs", response_model=RunOut, status_code=201, tags=["classification"])
async def start_run(data: RunIn, rt: RuntimeDep, who: CallerDep) -> RunOut:
    """Run K-Means now (small districts finish within the request: `status` says `done`)."""
    if not who.sees_whole_district:
        raise Forbidden("only admin and command staff run classification")
    s = rt.settings
    async with rt.transaction() as session:
        return await service.run(session, outbox=rt.outbox, data=data, scaling=s.scaling, n_init=s.n_init,
                                 seed=s.seed)


@router.get("/classification/runs/{run_id}", response_model=RunOut, tags=["classification"])
async def get_run(run_id: str, rt: RuntimeDep, who: CallerDep) -> RunOut:
    """A stored run with its assignments."""
    async with rt.sessions() as session:
        return await service.get_run(session, run_id=run_id)
