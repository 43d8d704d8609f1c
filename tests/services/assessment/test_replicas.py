"""Two replicas on one database: report jobs answer from either, concurrent indicator saves do not collide."""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import openpyxl
from sqlalchemy import func, select

from services.assessment.app import create_app
from services.assessment.config import AssessmentSettings
from services.assessment.models import IndicatorVersion, ReportJob
from shared.db import utcnow
from tests.helpers import Service, assert_problem, eventually, serving
from tests.services.assessment.test_example import load_example


@contextlib.asynccontextmanager
async def replica(assessment: Service, tmp_path: Path) -> AsyncIterator[Service]:
    """A second replica of the same service: same database and nats, its own process state (started after
    events were loaded, since it shares the consumers: `Service.publish` counts the first one's only)."""
    settings = AssessmentSettings(database_url=assessment.settings.database_url, nats_url=assessment.settings.nats_url,
                                  data_dir=tmp_path / "b", score_debounce_s=0, outbox_poll_s=0.1)
    app = create_app(settings)
    async with serving(app) as client:
        yield Service(client, settings, app.state.rt, assessment.bus)


async def test_a_report_job_started_on_one_replica_is_answered_by_the_other(assessment: Service,
                                                                             tmp_path: Path) -> None:
    await load_example(assessment)
    async with replica(assessment, tmp_path) as other:
        await _job_from_the_other_replica(assessment, other)


async def _job_from_the_other_replica(assessment: Service, other: Service) -> None:

    started = await assessment.client.post("/api/v1/reports/jobs", params={"kind": "monthly", "period": "2024-05"},
                                           headers=assessment.as_("command"))
    job_id = started.json()["id"]

    async def done() -> bool:
        r = await other.get(f"/api/v1/reports/jobs/{job_id}")
        assert r.status_code == 200, r.text
        return r.json()["status"] == "done"

    await eventually(done, what="the report job, seen from the other replica")
    status = (await other.get(f"/api/v1/reports/jobs/{job_id}")).json()
    file = await other.get(f"/api/v1/reports/jobs/{job_id}/file")
    stranger = await other.get(f"/api/v1/reports/jobs/{job_id}", role="admin")

    assert started.status_code == 202
    assert status["file"] == f"/api/v1/reports/jobs/{job_id}/file" and status["size"] == len(file.content)
    assert openpyxl.load_workbook(io.BytesIO(file.content))["Ranking"].max_row == 4
    assert_problem(stranger, 404)


async def test_an_interrupted_job_is_failed_and_old_jobs_expire(assessment: Service, tmp_path: Path) -> None:
    async with replica(assessment, tmp_path) as other:
        await _interrupted_and_expired(assessment, other)


async def _interrupted_and_expired(assessment: Service, other: Service) -> None:
    now = utcnow()
    s = assessment.settings
    stuck = ReportJob(id="rep-stuck", owner="command", role="command", kind="monthly", period="2024-05", format="xlsx",
                      status="running", replica="gone:1",
                      created_at=now - dt.timedelta(seconds=s.report_job_timeout_s + 5))
    expired = ReportJob(id="rep-old", owner="command", role="command", kind="monthly", period="2024-04", format="csv",
                        status="done", body=b"x", size=1, replica="gone:1",
                        created_at=now - dt.timedelta(seconds=s.report_job_ttl_s + 5), finished_at=now)
    async with assessment.rt.transaction() as session:
        session.add_all([stuck, expired])

    status = await other.get("/api/v1/reports/jobs/rep-stuck")
    file = await assessment.get("/api/v1/reports/jobs/rep-stuck/file")
    old = await other.get("/api/v1/reports/jobs/rep-old")
    started = await other.client.post("/api/v1/reports/jobs", params={"kind": "daily", "period": "2024-05-06",
                                                                      "format": "csv"}, headers=other.as_("command"))
    async with assessment.rt.sessions() as session:
        left = set((await session.execute(select(ReportJob.id))).scalars())

    assert (status.json()["status"], status.json()["error"]) == ("failed", "interrupted")
    assert_problem(file, 409)
    assert_problem(old, 404)
    assert started.status_code == 202
    assert left == {"rep-stuck", started.json()["id"]}  # the expired job was deleted when a new one started


async def test_indicator_saves_at_the_same_instant_on_two_replicas_all_get_versions(assessment: Service,
                                                                                    tmp_path: Path) -> None:
    async with replica(assessment, tmp_path) as other:
        await _concurrent_saves(assessment, other)


async def _concurrent_saves(assessment: Service, other: Service) -> None:
    async def save(replica: Service, k: int) -> httpx.Response:
        return await replica.client.put("/api/v1/indicators", headers=replica.as_("admin"), json={
            "indicators": {"education": {"target": 300 + k}}, "note": f"change {k}"})

    answers = await asyncio.gather(*[save(r, k) for k in range(4) for r in (assessment, other)])

    assert [a.status_code for a in answers] == [201] * 8, [a.text for a in answers if a.status_code != 201]
    numbers = sorted(a.json()["version"] for a in answers)
    assert numbers == list(range(1, 9))
    async with assessment.rt.sessions() as session:
        assert (await session.execute(select(func.count()).select_from(IndicatorVersion))).scalar_one() == 8
