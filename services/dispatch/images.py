"""Photo evidence as bytes: what a photo really is (by its content, never its name), and a clean copy of it.

A clean copy is decoded and encoded again by Pillow: whatever rode along in the file (a script after the
image data, comments, maker notes, the camera's serial, the time, the software) is gone; only the EXIF
location (the GPS block) is written back, because where a photo was taken is evidence. HEIC (iPhones) is
read through pillow-heif and kept as JPEG, which every browser shows. The picture is turned upright
(EXIF orientation applied) and scaled to at most `max_side` pixels; a thumbnail goes with it.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from shared.errors import DomainError, Invalid

try:  # HEIC/HEIF (a pinned dependency; without it such photos are refused as unreadable)
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:  # pragma: no cover - installed with the project
    pass

MAX_PIXELS = 60_000_000  # a decompression bomb (a small file that decodes to gigabytes) is refused above this
Image.MAX_IMAGE_PIXELS = MAX_PIXELS // 2  # Pillow warns above this and raises DecompressionBombError above twice it
GPS_IFD = 0x8825
HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
TYPES = {"jpeg": "image/jpeg", "png": "image/png", "heic": "image/heic"}


class UnsupportedPhoto(DomainError):
    """The bytes are not a JPEG, PNG or HEIC image (whatever their name or declared type)."""

    status, kind, title = 415, "unsupported-media-type", "Unsupported media type"


class PhotoTooLarge(DomainError):
    status, kind, title = 413, "payload-too-large", "Payload too large"


@dataclass(frozen=True)
class CleanPhoto:
    """A photo ready to store: its clean bytes and type, size, the thumbnail, the location if it had one."""

    kind: str  # what was uploaded: jpeg, png or heic
    content_type: str  # what is stored: image/jpeg or image/png
    data: bytes
    width: int
    height: int
    thumbnail: bytes  # JPEG
    lat: float | None
    lon: float | None


def sniff(data: bytes) -> str | None:
    """jpeg, png or heic by the file's first bytes (its magic number), else None."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if len(data) >= 12 and data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS:
        return "heic"
    return None


def _degrees(value: object, ref: object) -> float | None:
    """Decimal degrees of an EXIF (degrees, minutes, seconds) triple and its N/S/E/W reference."""
    try:
        d, m, s = (float(x) for x in value)  # type: ignore[union-attr]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    sign = -1.0 if str(ref).strip().upper() in ("S", "W") else 1.0
    return sign * (d + m / 60 + s / 3600)


def _location(gps: dict) -> tuple[float | None, float | None]:
    lat, lon = _degrees(gps.get(2), gps.get(1)), _degrees(gps.get(4), gps.get(3))
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None, None
    return round(lat, 7), round(lon, 7)


def clean(data: bytes, *, max_bytes: int, max_side: int = 2560, thumb_side: int = 320) -> CleanPhoto:
    """A clean copy of an uploaded photo; 413 over `max_bytes`, 415 if it is not a JPEG/PNG/HEIC image,
    422 if it claims to be one but cannot be read."""
    if len(data) > max_bytes:
        raise PhotoTooLarge(f"a photo is at most {max_bytes} bytes; this one is {len(data)}",
                            code="photo.too_large", params={"max_bytes": max_bytes})
    kind = sniff(data)
    if kind is None:
        raise UnsupportedPhoto("the upload is not a JPEG, PNG or HEIC image (checked by its content)",
                               code="photo.unsupported")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            gps = dict(image.getexif().get_ifd(GPS_IFD))
            upright = ImageOps.exif_transpose(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise Invalid(f"the {kind} image cannot be read: {type(exc).__name__}", code="photo.unreadable") from exc
    keep_png = kind == "png"
    picture = upright.convert("RGBA" if keep_png and upright.mode in ("RGBA", "LA", "P") else "RGB")
    picture.thumbnail((max_side, max_side))
    picture.info = {}  # no comment, ICC profile or text chunk of the original is carried over
    exif = Image.Exif()
    if gps:
        exif[GPS_IFD] = gps  # the location only: nothing else of the original's metadata is written
    out = io.BytesIO()
    if keep_png:
        picture.save(out, "PNG", optimize=False, exif=exif.tobytes() if gps else None)
    else:
        picture.save(out, "JPEG", quality=88, exif=exif.tobytes() if gps else b"")
    thumb = picture.convert("RGB")
    thumb.thumbnail((thumb_side, thumb_side))
    small = io.BytesIO()
    thumb.save(small, "JPEG", quality=80)
    lat, lon = _location(gps)
    return CleanPhoto(kind=kind, content_type="image/png" if keep_png else "image/jpeg", data=out.getvalue(),
                      width=picture.width, height=picture.height, thumbnail=small.getvalue(), lat=lat, lon=lon)
