"""Evidence photos (POST/GET /tasks/{id}/photos…) on SQLite and PostgreSQL, the clean copy they are stored as,
their retention, and an arrival tapped without a time (the server's clock)."""
from __future__ import annotations

import datetime as dt
import io

import pillow_heif
import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from services.dispatch import images, photo_store
from services.dispatch.images import GPS_IFD, clean
from tests.helpers import assert_problem
from tests.services.dispatch.support import Svc, incident, order, receive, set_modes

GPS = {1: "N", 2: (IFDRational(30), IFDRational(6), IFDRational(0)), 3: "E",
       4: (IFDRational(120), IFDRational(27), IFDRational(0))}


def jpeg(*, colour: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (800, 600)) -> bytes:
    """A JPEG with a location, a camera, software, a rotation, a comment and a script stuck to its end."""
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0131], exif[0x0112] = "Canon", "SerialCam-4711", "Photoshop", 6
    exif[GPS_IFD] = GPS
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "JPEG", exif=exif.tobytes(), comment=b"secret note")
    return out.getvalue() + b"<script>alert(1)</script>"


def test_a_clean_copy_keeps_the_location_and_nothing_else() -> None:
    photo = clean(jpeg(), max_bytes=10**7)
    stored = Image.open(io.BytesIO(photo.data))
    assert (photo.kind, photo.content_type, stored.size) == ("jpeg", "image/jpeg", (600, 800))  # turned upright
    assert (photo.lat, photo.lon) == (30.1, 120.45)
    exif = stored.getexif()
    assert set(exif) == {GPS_IFD} and dict(exif.get_ifd(GPS_IFD))[1] == "N"
    for leak in (b"SerialCam", b"Photoshop", b"Canon", b"secret note", b"script"):
        assert leak not in photo.data
    assert max(Image.open(io.BytesIO(photo.thumbnail)).size) == 320
    heic = io.BytesIO()
    pillow_heif.from_pillow(Image.new("RGB", (64, 48), (0, 90, 200))).save(heic, quality=60)
    assert clean(heic.getvalue(), max_bytes=10**7).content_type == "image/jpeg"
    with pytest.raises(images.UnsupportedPhoto):
        clean(b"#!/bin/sh\nrm -rf /\n", max_bytes=10**7)
    with pytest.raises(images.PhotoTooLarge):
        clean(jpeg(), max_bytes=100)


async def test_photos_round_an_order_within_its_jurisdiction_only(svc: Svc) -> None:
    await set_modes(svc, {"ps-yiqiao": "deep"})
    task_id = await receive(svc, order("ps-yiqiao", milestones={"call the driver": dt.timedelta(days=1)}))
    other_id = await receive(svc, order("ps-yiqiao"))
    mine, other_station = svc.station("ps-yiqiao"), svc.station("ps-heshang")
    url = f"/api/v1/tasks/{task_id}/photos"
    raw = jpeg()

    first = await svc.client.post(url, content=raw, headers=mine | {"content-type": "image/jpeg"})
    again = await svc.client.post(url, content=raw, headers=mine | {"content-type": "image/jpeg"})

    assert first.status_code == 201, first.text
    photo = first.json()
    assert again.status_code == 200 and again.json()["id"] == photo["id"]
    assert photo["location"] == {"lat": 30.1, "lon": 120.45} and photo["kind"] == "jpeg"
    assert photo["evidence_ref"] == f"photo:{photo['id']}" and photo["attached_action"] is None
    got = await svc.client.get(photo["href"], headers=mine)
    assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"
    assert b"SerialCam" not in got.content and b"script" not in got.content
    thumb = await svc.client.get(photo["thumbnail_href"], headers=svc.as_("command"))
    assert thumb.status_code == 200 and max(Image.open(io.BytesIO(thumb.content)).size) <= 320
    listed = await svc.client.get(url, headers=svc.as_("squadron", "sq-rural"))
    assert [p["id"] for p in listed.json()["items"]] == [photo["id"]]

    # another station sees neither the order's photos nor that they exist; command may look, not add
    for path in (url, photo["href"], photo["thumbnail_href"]):
        assert_problem(await svc.client.get(path, headers=other_station), 404)
    assert_problem(await svc.client.post(url, content=raw, headers=other_station), 404)
    assert_problem(await svc.client.post(url, content=raw, headers=svc.as_("command")), 403)
    # what it is is decided by its bytes: a script named and typed as a JPEG, a broken JPEG, too big
    script = await svc.client.post(url, content=b"<script>alert(1)</script>",
                                   headers=mine | {"content-type": "image/jpeg", "accept-language": "zh-CN"})
    assert "JPEG" in assert_problem(script, 415)["detail"]
    assert_problem(await svc.client.post(url, content=b"\xff\xd8\xff\xe0broken", headers=mine), 422)
    too_big = b"\xff\xd8\xff" + bytes(svc.rt.settings.photo_max_bytes)
    assert_problem(await svc.client.post(url, content=too_big, headers=mine), 413)
    png = io.BytesIO()
    Image.new("RGBA", (40, 30)).save(png, "PNG")
    loose = (await svc.client.post(url, content=png.getvalue(), headers=mine)).json()
    assert loose["content_type"] == "image/png"

    # attached to a milestone by citing it; a photo of another order cannot be cited
    async def step(action: str, **body: object) -> dict:
        r = await svc.client.post(f"/api/v1/tasks/{task_id}/transitions", json={"action": action, **body},
                                  headers=mine)
        assert r.status_code == 200, r.text
        return r.json()

    await step("accept")
    await step("start")
    foreign = await svc.client.post(f"/api/v1/tasks/{other_id}/photos", content=jpeg(colour=(1, 2, 3)),
                                    headers=mine)
    cited = await svc.client.post(f"/api/v1/tasks/{task_id}/transitions", headers=mine, json={
        "action": "complete_milestone", "milestone": "call the driver", "evidence": [foreign.json()["evidence_ref"]]})
    assert_problem(cited, 422)
    done = await step("complete_milestone", milestone="call the driver", evidence=[photo["evidence_ref"]])
    assert done["history"][-1]["evidence"] == [photo["evidence_ref"]]
    attached = (await svc.client.get(url, headers=mine)).json()["items"]
    by_id = {p["id"]: p for p in attached}
    assert by_id[photo["id"]]["attached_action"] == "complete_milestone"
    assert by_id[photo["id"]]["attached_milestone"] == done["milestones"][0]["code"]

    # retention: a photo never attached goes after its days; attached ones stay with their order
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=3)
    pruned = await photo_store.prune_unattached(svc.rt.sessions, days=2, batch=10, now=later)
    assert pruned == {"unattached photos": 2}  # the loose PNG and the foreign order's photo
    left = (await svc.client.get(url, headers=mine)).json()["items"]
    assert [p["id"] for p in left] == [photo["id"]]
    await step("submit", note="done")
    assert_problem(await svc.client.post(url, content=png.getvalue(), headers=mine), 409)


async def test_an_arrival_tapped_without_a_time_takes_the_servers_clock_once(svc: Svc) -> None:
    await set_modes(svc, {"ps-yiqiao": "deep"})
    created = await svc.client.post("/api/v1/incidents", json=incident("tap-1"), headers=svc.as_("platform"))
    assert created.status_code == 201, created.text
    url = f"/api/v1/incidents/{created.json()['id']}/arrival"
    before = dt.datetime.now(dt.UTC)

    tap = await svc.client.post(url, json={}, headers=svc.station("ps-yiqiao"))
    again = await svc.client.post(url, json={}, headers=svc.station("ps-yiqiao"))

    assert tap.status_code == 200, tap.text
    arrived = dt.datetime.fromisoformat(tap.json()["arrived_at"])
    assert before - dt.timedelta(seconds=1) <= arrived <= dt.datetime.now(dt.UTC)
    assert again.status_code == 200 and again.json()["arrived_at"] == tap.json()["arrived_at"]
