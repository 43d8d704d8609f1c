"""Evidence photos over HTTP: upload to a task order, list its photos, read one (or its thumbnail).

Every call first finds the order in the caller's jurisdiction (else 404, as for the order itself); only the
receiving unit (or an admin) uploads, while the order is open. An upload is the raw image as the request
body (no multipart: a phone sends the file as it is); what it is, is decided by its bytes.
"""
from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response

from services.dispatch import images, photo_store, tasks
from services.dispatch.lifecycle import OPEN
from services.dispatch.models import TaskOrder
from services.dispatch.photo_store import PhotoOut
from shared.auth import Identity
from shared.errors import Conflict, Forbidden
from shared.pagination import Page, PageDep
from shared.runtime import CallerDep, RuntimeDep

router = APIRouter(prefix="/api/v1", tags=["tasks"])
IMAGE_BODY = {"schema": {"type": "string", "format": "binary"}}
UPLOAD_DOC = {"requestBody": {"required": True, "description": "the photo's bytes (JPEG, PNG or HEIC; the type is read "
                                                                "from the bytes, whatever the content-type says)",
                               "content": {kind: IMAGE_BODY | {"example": "(the image file's bytes)"}
                                           for kind in ("image/jpeg", "image/png", "image/heic")}}}
IMAGE_ANSWER = {200: {"content": {"image/jpeg": IMAGE_BODY, "image/png": IMAGE_BODY},
                      "description": "the image"}}
CACHE = "private, max-age=86400, immutable"  # a photo's bytes never change under its id


def _uploader(who: Identity, task: TaskOrder) -> None:
    if who.unit_id != task.unit_id and who.role != "admin":
        raise Forbidden(f"only the receiving unit {task.unit_id} adds photos to this order")
    if task.status not in OPEN:
        raise Conflict(f"task order {task.id} is {task.status}: photos are added while it is open",
                       code="photo.order_closed", params={"task_id": task.id, "status": task.status})


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it passes `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise images.PhotoTooLarge(f"a photo is at most {limit} bytes", code="photo.too_large",
                                   params={"max_bytes": limit})
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise images.PhotoTooLarge(f"a photo is at most {limit} bytes", code="photo.too_large",
                                       params={"max_bytes": limit})
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/tasks/{task_id}/photos", response_model=PhotoOut, status_code=201, openapi_extra=UPLOAD_DOC,
             responses={200: {"model": PhotoOut, "description": "the same bytes were uploaded before: that photo"},
                        413: {"description": "over the size limit"},
                        415: {"description": "not a JPEG, PNG or HEIC image (by content)"}})
async def upload_photo(task_id: str, request: Request, rt: RuntimeDep, who: CallerDep,
                       response: Response) -> PhotoOut:
    """Add a photo to a task order (the receiving unit, while the order is open). It is checked by its content,
    cleaned (only the EXIF location kept) and stored with a thumbnail; cite its `evidence_ref` in a
    complete_milestone or submit transition to attach it to that step. Repeating an upload is safe."""
    settings = rt.settings
    async with rt.sessions() as session:
        _uploader(who, await tasks.scoped_task(session, who, task_id))
    raw = await _body(request, settings.photo_max_bytes)
    sha256 = photo_store.digest(raw)
    async with rt.sessions() as session:
        seen = await photo_store.known(session, task_id=task_id, sha256=sha256)
    if seen is not None:
        response.status_code = 200
        return photo_store.photo_out(seen)
    clean = await asyncio.to_thread(images.clean, raw, max_bytes=settings.photo_max_bytes,
                                    max_side=settings.photo_max_side)
    async with rt.transaction() as session:
        row, created = await photo_store.store(session, task_id=task_id, sha256=sha256, photo=clean, by=who.username)
    if not created:
        response.status_code = 200
    return photo_store.photo_out(row)


@router.get("/tasks/{task_id}/photos", response_model=Page[PhotoOut])
async def list_photos(task_id: str, rt: RuntimeDep, who: CallerDep, page: PageDep) -> Page:
    """A task order's photos, oldest first (descriptions; the bytes at each `href`)."""
    async with rt.sessions() as session:
        await tasks.scoped_task(session, who, task_id)
        rows, next_cursor = await photo_store.list_photos(session, task_id=task_id, request=page)
    return Page(items=[photo_store.photo_out(r) for r in rows], next_cursor=next_cursor)


async def _image(task_id: str, photo_id: str, rt: RuntimeDep, who: Identity, *, thumbnail: bool) -> Response:
    async with rt.sessions() as session:
        await tasks.scoped_task(session, who, task_id)
        data, content_type = await photo_store.image(session, task_id=task_id, photo_id=photo_id,
                                                     thumbnail=thumbnail)
    return Response(data, media_type=content_type, headers={"cache-control": CACHE})


@router.get("/tasks/{task_id}/photos/{photo_id}", response_class=Response, responses=IMAGE_ANSWER)
async def get_photo(task_id: str, photo_id: str, rt: RuntimeDep, who: CallerDep) -> Response:
    """A photo's clean copy (404 outside the order's jurisdiction, like the order)."""
    return await _image(task_id, photo_id, rt, who, thumbnail=False)


@router.get("/tasks/{task_id}/photos/{photo_id}/thumbnail", response_class=Response,
            responses={200: {"content": {"image/jpeg": IMAGE_BODY}, "description": "the thumbnail (JPEG)"}})
async def get_thumbnail(task_id: str, photo_id: str, rt: RuntimeDep, who: CallerDep) -> Response:
    """A photo's thumbnail, at most 320 pixels a side."""
    return await _image(task_id, photo_id, rt, who, thumbnail=True)
