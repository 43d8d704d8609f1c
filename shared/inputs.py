"""Input every database can store, checked at a service's door: a 422 there instead of a 500 at commit time.

PostgreSQL refuses NUL characters in text and NaN/Infinity in JSON; neither database stores an integer past
64 bits. Services build their request-body bases on `check_storable` and mount `RefuseNulInUrl`.
"""
from __future__ import annotations

import datetime as dt
import math
from typing import Annotated, Any

from pydantic import AfterValidator
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.errors import problem


def storable_text(text: str) -> str | None:
    """Why this text cannot be stored (None: it can): NUL characters and unpaired surrogates are refused."""
    if "\x00" in text:
        return "text may not contain NUL characters"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "text is not valid Unicode (unpaired surrogate)"
    return None


def check_storable(value: Any, *, max_depth: int, max_int: int | None = None, depth: int = 0) -> None:
    """Refuse (ValueError) a JSON-like value holding unstorable text, non-finite numbers, integers beyond
    `max_int` (None: any) or nesting deeper than `max_depth`."""
    if depth > max_depth:
        raise ValueError(f"nested more than {max_depth} levels deep")
    if isinstance(value, str):
        if (why := storable_text(value)) is not None:
            raise ValueError(why)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("numbers must be finite (no NaN or Infinity)")
    elif isinstance(value, bool):
        return
    elif isinstance(value, int):
        if max_int is not None and abs(value) > max_int:
            raise ValueError("integer out of range")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_storable(key, max_depth=max_depth, max_int=max_int, depth=depth + 1)
            check_storable(item, max_depth=max_depth, max_int=max_int, depth=depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            check_storable(item, max_depth=max_depth, max_int=max_int, depth=depth + 1)


class RefuseNulInUrl:
    """ASGI middleware: a path or query holding a NUL character (`%00`) is a 422 problem, not a database error."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            query: bytes = scope.get("query_string", b"")
            if "\x00" in scope.get("path", "") or b"%00" in query or b"\x00" in query:
                response = problem(422, "invalid", "Invalid input", "the URL may not contain NUL characters",
                                   instance=scope.get("path"))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def with_offset(value: dt.datetime) -> dt.datetime:
    """A timestamp must carry its UTC offset: a bare one means different moments in the district and on a server."""
    if value.tzinfo is None:
        raise ValueError("timestamps need an offset, e.g. 2024-05-01T08:30:00+08:00")
    return value


#: a timestamp with its UTC offset; a bare one is a 422
OffsetDatetime = Annotated[dt.datetime, AfterValidator(with_offset)]
