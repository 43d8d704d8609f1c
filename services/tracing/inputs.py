"""What tracing accepts at its door beyond the schemas' types: text and numbers every database can store.

PostgreSQL refuses NUL characters in text and NaN/Infinity in JSON; neither database stores an integer past 64
bits (PostgreSQL's INTEGER stops at 2^31-1). Such input is refused as 422 here instead of failing as a 500 at
commit time.
"""
from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.errors import problem

#: the largest count (violations, residents…) a registry record may carry: well inside a 32-bit INTEGER column
MAX_COUNT = 100_000_000
#: how deep a JSON value may nest (geometry, parameters, examples)
MAX_DEPTH = 32


def storable_text(text: str) -> str | None:
    """Why this text cannot be stored (None: it can): NUL characters and unpaired surrogates are refused."""
    if "\x00" in text:
        return "text may not contain NUL characters"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "text is not valid Unicode (unpaired surrogate)"
    return None


def check_storable(value: Any, depth: int = 0) -> None:
    """Refuse (ValueError) a JSON-like value holding unstorable text, non-finite numbers or absurd nesting."""
    if depth > MAX_DEPTH:
        raise ValueError(f"nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, str):
        if (why := storable_text(value)) is not None:
            raise ValueError(why)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("numbers must be finite (no NaN or Infinity)")
    elif isinstance(value, bool):
        return
    elif isinstance(value, int):
        if abs(value) > 2**53:
            raise ValueError("integer out of range")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_storable(key, depth + 1)
            check_storable(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            check_storable(item, depth + 1)


class StrictIn(BaseModel):
    """Base of tracing's request bodies: unknown fields, NaN/Infinity, NUL and unpaired surrogates refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        check_storable(data)
        return data


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
