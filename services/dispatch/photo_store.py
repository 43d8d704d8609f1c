"""Evidence photos in dispatch's database: storing a clean copy once, reading it back, attaching it to a step
of a task order's loop, and pruning photos never attached. Jurisdiction is checked by the caller on the order
(photo_api.py); every query here also names the order, so a photo is only ever read through its own order."""
from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from pydantic import BaseModel
from pydantic import Field as PField
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import defer

from services.dispatch.images import CleanPhoto
from services.dispatch.models import TaskPhoto
from shared.db import insert_ignoring_duplicates, utcnow
from shared.errors import Invalid, NotFound
from shared.pagination import Keyset, PageRequest
from shared.retention import prune_older

PHOTOS = TaskPhoto.__table__
PHOTO_ORDER = Keyset(TaskPhoto.uploaded_at, TaskPhoto.id)
REF = "photo:"  # an evidence reference to a stored photo: photo:<id>


class LocationOut(BaseModel):
    lat: float
    lon: float


class PhotoOut(BaseModel):
    """A stored photo's description (its bytes: `href`, its thumbnail: `thumbnail_href`)."""

    id: str
    task_id: str
    evidence_ref: str = PField(description="cite it in a transition's `evidence` to attach it to that step")
    kind: str = PField(description="what was uploaded: jpeg, png or heic (by content)")
    content_type: str = PField(description="what is served: image/jpeg (HEIC is kept as JPEG) or image/png")
    width: int
    height: int
    size: int = PField(description="bytes of the stored clean copy")
    location: LocationOut | None = PField(None, description="from the photo's EXIF GPS block, kept in the file")
    uploaded_by: str
    uploaded_at: dt.datetime
    attached_action: str | None = PField(None, description="complete_milestone or submit, once attached")
    attached_milestone: str | None = None
    attached_at: dt.datetime | None = None
    href: str
    thumbnail_href: str


def photo_out(row: Any) -> PhotoOut:
    base = f"/api/v1/tasks/{row.task_id}/photos/{row.id}"
    location = LocationOut(lat=row.lat, lon=row.lon) if row.lat is not None and row.lon is not None else None
    return PhotoOut(id=row.id, task_id=row.task_id, evidence_ref=REF + row.id, kind=row.kind,
                    content_type=row.content_type, width=row.width, height=row.height, size=row.size,
                    location=location, uploaded_by=row.uploaded_by, uploaded_at=row.uploaded_at,
                    attached_action=row.attached_action, attached_milestone=row.attached_milestone,
                    attached_at=row.attached_at, href=base, thumbnail_href=base + "/thumbnail")


def is_photo_ref(ref: str) -> bool:
    """`photo:<id>` names a stored photo; other references (`photo://…`, `doc://…`, free text) stay as given."""
    return ref.startswith(REF) and not ref.startswith(REF + "//")


def digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def photo_id(task_id: str, sha256: str) -> str:
    """The same bytes for the same order always get the same id: an upload repeated after a lost answer
    stores nothing new, on any replica."""
    return "ph-" + hashlib.sha256(f"{task_id}\n{sha256}".encode()).hexdigest()[:28]


async def store(session: AsyncSession, *, task_id: str, sha256: str, photo: CleanPhoto,
                by: str) -> tuple[TaskPhoto, bool]:
    """Store a clean photo for an order once; (the photo, whether it was new)."""
    new_id = photo_id(task_id, sha256)
    inserted = await session.execute(insert_ignoring_duplicates(
        PHOTOS, session.bind.dialect.name, id=new_id, task_id=task_id, sha256=sha256, kind=photo.kind,
        content_type=photo.content_type, width=photo.width, height=photo.height, size=len(photo.data),
        data=photo.data, thumbnail=photo.thumbnail, lat=photo.lat, lon=photo.lon, uploaded_by=by,
        uploaded_at=utcnow()))
    row = await described(session, task_id=task_id, photo_id=new_id)
    return row, inserted.rowcount == 1


async def known(session: AsyncSession, *, task_id: str, sha256: str) -> TaskPhoto | None:
    """The photo of these bytes already stored for the order, if any (no need to clean them again)."""
    return (await session.execute(select(TaskPhoto).options(defer(TaskPhoto.data), defer(TaskPhoto.thumbnail))
                                  .where(TaskPhoto.id == photo_id(task_id, sha256)))).scalar()


async def described(session: AsyncSession, *, task_id: str, photo_id: str) -> TaskPhoto:
    row = (await session.execute(select(TaskPhoto).options(defer(TaskPhoto.data), defer(TaskPhoto.thumbnail))
                                 .where(TaskPhoto.id == photo_id, TaskPhoto.task_id == task_id))).scalar()
    if row is None:
        raise NotFound(f"photo {photo_id} of task {task_id} not found")
    return row


async def list_photos(session: AsyncSession, *, task_id: str, request: PageRequest) -> tuple[list[TaskPhoto],
                                                                                            str | None]:
    stmt = select(TaskPhoto).options(defer(TaskPhoto.data), defer(TaskPhoto.thumbnail)) \
        .where(TaskPhoto.task_id == task_id)
    return await PHOTO_ORDER.page(session, stmt, request)


async def image(session: AsyncSession, *, task_id: str, photo_id: str, thumbnail: bool) -> tuple[bytes, str]:
    """(bytes, content type) of a photo or its thumbnail."""
    column = PHOTOS.c.thumbnail if thumbnail else PHOTOS.c.data
    row = (await session.execute(select(column, PHOTOS.c.content_type)
                                 .where(PHOTOS.c.id == photo_id, PHOTOS.c.task_id == task_id))).first()
    if row is None:
        raise NotFound(f"photo {photo_id} of task {task_id} not found")
    return row[0], "image/jpeg" if thumbnail else row[1]


async def attach(session: AsyncSession, *, task_id: str, evidence: list[str], action: str, milestone: str | None,
                 at: dt.datetime) -> None:
    """Attach the photos an evidence list cites (`photo:<id>`) to a step; each must be a photo of this order.
    A photo keeps its first attachment (citing it again later is fine)."""
    ids = list(dict.fromkeys(ref[len(REF):] for ref in evidence if is_photo_ref(ref)))
    if not ids:
        return
    found = set((await session.execute(select(TaskPhoto.id).where(TaskPhoto.id.in_(ids),
                                                                  TaskPhoto.task_id == task_id))).scalars())
    missing = [i for i in ids if i not in found]
    if missing:
        raise Invalid(f"no photo {', '.join(missing)} was uploaded for task order {task_id}",
                      code="photo.not_of_task", params={"task_id": task_id, "photos": ", ".join(missing)})
    await session.execute(update(TaskPhoto).where(TaskPhoto.id.in_(ids), TaskPhoto.attached_at.is_(None))
                          .values(attached_action=action, attached_milestone=milestone, attached_at=at)
                          .execution_options(synchronize_session=False))


async def prune_unattached(sessions: async_sessionmaker[AsyncSession], *, days: float, batch: int,
                           now: dt.datetime | None = None) -> dict[str, int]:
    """Delete photos uploaded more than `days` ago and never attached to a step (0 days: keep them)."""
    if days <= 0:
        return {"unattached photos": 0}
    cutoff = (now or utcnow()) - dt.timedelta(days=days)
    pruned = await prune_older(sessions, PHOTOS, PHOTOS.c.uploaded_at, cutoff, batch=batch,
                               also=PHOTOS.c.attached_at.is_(None))
    return {"unattached photos": pruned}
