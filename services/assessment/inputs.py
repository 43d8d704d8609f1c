"""What assessment accepts at its door beyond the schemas' types: text, numbers and dates it can store and score.

PostgreSQL refuses NUL characters in text and NaN/Infinity in JSON; a non-finite number makes scores unshowable;
a date centuries away makes month-by-month work (dirty months, periods) explode. Such input is a 422 here.
"""
from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.errors import problem

#: the years a record, a history month or a period may fall in
MIN_YEAR, MAX_YEAR = 1900, 2199
#: a month label in those years
MONTH = r"^(19\d{2}|2[01]\d{2})-(0[1-9]|1[0-2])$"
#: a unit id as records name it: any text without control characters (they break reports' worksheets)
UNIT_ID = r"^[^\x00-\x1f\x7f]+$"
#: the largest measured amount a record or a history month may carry
MAX_AMOUNT = 1e9
Amount = Annotated[float, Field(ge=0, le=MAX_AMOUNT, allow_inf_nan=False)]
MAX_DEPTH = 16


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
    elif isinstance(value, dict):
        for key, item in value.items():
            check_storable(key, depth + 1)
            check_storable(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            check_storable(item, depth + 1)


class StrictIn(BaseModel):
    """Base of assessment's request bodies: NaN/Infinity, NUL and unpaired surrogates refused."""

    model_config = ConfigDict(allow_inf_nan=False)

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
