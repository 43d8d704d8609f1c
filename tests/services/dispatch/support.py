"""What the dispatch tests share: a running service in-process, demo units, generated orders, outbox reads."""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import uvicorn
from sqlalchemy import select

from deploy.natsd import free_port
from services.dispatch import tasks
from services.dispatch.app import create_app
from services.dispatch.config import DispatchSettings
from services.dispatch.models import OUTBOX
from services.dispatch.service import apply_classification
from shared.db import utcnow
from shared.events import Milestone, StationClassified, TaskOrderGenerated
from shared.runtime import Runtime
from tests.helpers import Service, bounded_teardown, eventually, running_service

DEMO = json.loads((Path(__file__).resolve().parents[3] / "deploy" / "demo_district.json").read_text())
IN_YIQIAO = {"lat": 30.1, "lon": 120.45}
IN_HESHANG = {"lat": 30.2, "lon": 120.45}
OUTSIDE = {"lat": 31.5, "lon": 121.9}


Svc = Service  # a dispatch replica running in-process (tests/helpers.py)


def settings_for(database_url: str, nats_url: str, data_dir: Path, **extra: Any) -> DispatchSettings:
    """Settings of a test replica: fast relay; a scheduler slow enough to stay out of the way unless asked."""
    values: dict[str, Any] = {"outbox_poll_s": 0.2, "scheduler_interval_s": 60.0, "sse_heartbeat_s": 0.5} | extra
    return DispatchSettings(database_url=database_url, nats_url=nats_url, data_dir=data_dir, **values)


@asynccontextmanager
async def running(settings: DispatchSettings, *, load_units: bool = True) -> AsyncIterator[Svc]:
    """A replica with the demo district's units."""
    async with running_service(create_app, settings) as svc:
        if load_units:
            response = await svc.client.post("/api/v1/units", json=DEMO["units"], headers=svc.as_("admin"))
            assert response.status_code == 200, response.text
        yield svc


async def set_modes(svc: Svc | Runtime, modes: dict[str, str]) -> None:
    """Apply classification results as if they came from the bus (to a replica, or its runtime)."""
    rt = svc if isinstance(svc, Runtime) else svc.rt
    async with rt.transaction() as session:
        for station_id, mode in modes.items():
            await apply_classification(session, fact=StationClassified(station_id=station_id, mode=mode,
                                                                         source="model"))


def order(station_id: str | None, category: str = "personal_education", *, model_id: str = "X01",
          deadline_in: dt.timedelta = dt.timedelta(days=7), milestones: dict[str, dt.timedelta] | None = None,
          ) -> TaskOrderGenerated:
    """A task order as tracing would generate it."""
    now = utcnow()
    return TaskOrderGenerated(
        task_id=f"task-{uuid.uuid4().hex}", incident_id=f"inc-{uuid.uuid4().hex[:8]}", model_id=model_id,
        model_version=1, source="person", entity_ref="person:abc", category=category, station_id=station_id,
        deadline_at=now + deadline_in, reason="test order",
        milestones=[Milestone(name=n, due_at=now + d) for n, d in (milestones or {}).items()])


async def receive(svc: Svc, fact: TaskOrderGenerated) -> str:
    """Hand a generated order to dispatch as its consumer would; returns the task id."""
    from services.dispatch import routing

    async with svc.rt.transaction() as session:
        version, table = await routing.in_force(svc.rt.state, session, ttl_s=0)
        await tasks.receive_task_order(session, outbox=svc.rt.outbox, fact=fact, routing=table,
                                       routing_version=version)
    return fact.task_id


async def staged(svc: Svc, subject: str) -> list[dict[str, Any]]:
    """Payloads of every event of this subject in the outbox (sent or not), oldest first."""
    async with svc.rt.sessions() as session:
        bodies = (await session.execute(select(OUTBOX.table.c.body).where(OUTBOX.table.c.subject == subject)
                                        .order_by(OUTBOX.table.c.seq))).scalars().all()
    return [json.loads(b)["data"] for b in bodies]


def incident(external_id: str, *, location: dict[str, float] | None = None,
             occurred_at: str = "2024-05-01T08:30:00+08:00", **extra: Any) -> dict[str, Any]:
    """An incident body."""
    return {"external_id": external_id, "occurred_at": occurred_at, "location": location or IN_YIQIAO} | extra


async def ready(value: bool) -> bool:
    """An awaitable of a value, for `eventually` on plain flags."""
    return value


@asynccontextmanager
async def served(settings: DispatchSettings) -> AsyncIterator[tuple[str, object]]:
    """A replica behind a real HTTP server (streaming needs one); yields its base URL and app."""
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    await eventually(lambda: ready(server.started), what="uvicorn started", timeout=20)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        await bounded_teardown(task, what="uvicorn serving dispatch")

