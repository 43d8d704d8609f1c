"""Cursor pagination: an opaque cursor over a stable (sort key, id) order."""
from __future__ import annotations

import base64
import json
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

from shared.errors import Invalid

T = TypeVar("T")

MAX_LIMIT = 500


class Page(BaseModel, Generic[T]):
    """One page of a list and the cursor to the next (None at the end)."""

    items: list[T]
    next_cursor: str | None = Field(None, description="pass as `cursor` to get the next page")


def encode_cursor(*key: Any) -> str:
    """An opaque cursor for the last item's sort key."""
    return base64.urlsafe_b64encode(json.dumps(list(key), default=str).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> list[Any] | None:
    """The sort key inside a cursor; Invalid if it was tampered with."""
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, json.JSONDecodeError) as exc:
        raise Invalid("malformed cursor") from exc
    if not isinstance(key, list):
        raise Invalid("malformed cursor")
    return key
