"""Report jobs kept in the database: any replica answers for a job, an interrupted one is reported failed.

A job row holds the request (kind, period, format, station, the requester's username, role and unit), its
status, the rendered file's bytes when done, and its times. The replica that accepted the job builds it in a
background task and writes the result back; every replica reads the row. A job still `running` longer than
`report_job_timeout_s` is reported `failed` with error `interrupted` (its replica stopped; the request can be
sent again — jobs are not resumed). Jobs older than `report_job_ttl_s` are deleted.
"""
from __future__ import annotations

import datetime as dt
import os
import socket
import uuid
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.assessment.models import ReportJob
from services.assessment.schemas import ReportJobOut
from shared.auth import Identity
from shared.db import utcnow
from shared.errors import NotFound

REPLICA = f"{socket.gethostname()}:{os.getpid()}"[:100]
INTERRUPTED = "interrupted"


def new_job(who: Identity, *, kind: str, period: str, fmt: str, station_id: str | None) -> ReportJob:
    """A fresh `running` job row for the caller."""
    return ReportJob(id=f"rep-{uuid.uuid4().hex}", owner=who.username, role=who.role, unit_id=who.unit_id, kind=kind,
                     period=period, format=fmt, station_id=station_id, status="running", replica=REPLICA,
                     created_at=utcnow(), finished_at=None)


async def finish(session: AsyncSession, job_id: str, *, body: bytes | None, error: str | None = None) -> None:
    """Store a job's outcome: its file (done) or its error (failed)."""
    values: dict[str, Any] = {"finished_at": utcnow()}
    stmt = update(ReportJob).where(ReportJob.id == job_id)
    if error is None:  # a late finish still wins over an `interrupted` verdict: the file is good
        values.update(status="done", body=body, size=len(body or b""), error=None)
    else:
        values.update(status="failed", error=error[:200])
        stmt = stmt.where(ReportJob.status == "running")
    await session.execute(stmt.values(**values))


async def purge(session: AsyncSession, *, ttl_s: float, timeout_s: float) -> int:
    """Delete expired jobs and mark long-running ones failed (`interrupted`); returns how many were deleted."""
    now = utcnow()
    gone = await session.execute(delete(ReportJob).where(ReportJob.created_at < now - dt.timedelta(seconds=ttl_s)))
    await session.execute(
        update(ReportJob).where(ReportJob.status == "running",
                                ReportJob.created_at < now - dt.timedelta(seconds=timeout_s))
        .values(status="failed", error=INTERRUPTED, finished_at=now))
    return int(gone.rowcount or 0)  # type: ignore[attr-defined]


_STATUS_COLUMNS = [c for c in ReportJob.__table__.columns if c.name != "body"]  # type: ignore[attr-defined]


async def status_of(session: AsyncSession, who: Identity, job_id: str, *, ttl_s: float,
                    timeout_s: float) -> dict[str, Any]:
    """The caller's job as a row of columns (without the file); 404 for others' jobs and expired ones.

    A job running past the timeout is marked failed here, so the answer does not depend on which replica
    is asked or whether a purge ran.
    """
    row = (await session.execute(select(*_STATUS_COLUMNS).where(ReportJob.id == job_id))).mappings().first()
    now = utcnow()
    if row is None or row["owner"] != who.username or row["created_at"] < now - dt.timedelta(seconds=ttl_s):
        raise NotFound(f"no report job {job_id}")
    job = dict(row)
    if job["status"] == "running" and job["created_at"] < now - dt.timedelta(seconds=timeout_s):
        await session.execute(update(ReportJob).where(ReportJob.id == job_id, ReportJob.status == "running")
                              .values(status="failed", error=INTERRUPTED, finished_at=now))
        job.update(status="failed", error=INTERRUPTED, finished_at=now)
    return job


async def body_of(session: AsyncSession, job_id: str) -> bytes:
    """A finished job's file."""
    return (await session.execute(select(ReportJob.body).where(ReportJob.id == job_id))).scalar_one() or b""


def job_out(job: dict[str, Any], *, ttl_s: float) -> ReportJobOut:
    """A job as the API shows it."""
    return ReportJobOut(
        id=job["id"], status=job["status"], kind=job["kind"], period=job["period"], format=job["format"],
        station_id=job["station_id"], created_at=job["created_at"], finished_at=job["finished_at"],
        expires_at=job["created_at"] + dt.timedelta(seconds=ttl_s), size=job["size"], error=job["error"],
        file=f"/api/v1/reports/jobs/{job['id']}/file" if job["status"] == "done" else None)


def as_dict(job: ReportJob) -> dict[str, Any]:
    """A job row as the column mapping `status_of` returns."""
    return {c.name: getattr(job, c.name) for c in _STATUS_COLUMNS}
