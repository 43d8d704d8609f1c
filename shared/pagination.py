"""Keyset pagination, the one way every list in the public API pages.

A list takes `limit` (1–500, default 50) and `cursor` (the `next_cursor` of the page before) through
`PageDep`, orders by a `Keyset` (a sort column and the id, both one direction), and answers a `Page`.
A cursor is opaque: base64 of the last item's key, read back with the key columns' own types, so a cursor
that was tampered with, or belongs to another list, is a 422 `invalid-cursor`; a limit out of range is a 422
`limit-out-of-range` (shared/errors.py), never a 500.
"""
from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import Boolean, Date, DateTime, Float, Integer, Numeric, TypeDecorator, and_, or_
from sqlalchemy.ext.asyncio import AsyncSession

from shared.errors import MAX_PAGE, InvalidCursor
from shared.inputs import storable_text

T = TypeVar("T")

MAX_LIMIT = MAX_PAGE
DEFAULT_LIMIT = 50


class Page(BaseModel, Generic[T]):
    """One page of a list and the cursor to the next (None at the end)."""

    items: list[T]
    next_cursor: str | None = Field(None, description="pass as `cursor` to get the next page; null on the last")


@dataclass(frozen=True)
class PageRequest:
    """What the caller asked for: how many, after which item."""

    limit: int = DEFAULT_LIMIT
    cursor: str | None = None


def page_request(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"items per page, 1–{MAX_LIMIT}")] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=2048, description="`next_cursor` of the previous page")] = None,
) -> PageRequest:
    """The `limit` and `cursor` query parameters of a list."""
    return PageRequest(limit, cursor)


PageDep = Annotated[PageRequest, Depends(page_request)]


def encode_cursor(*key: Any) -> str:
    """An opaque cursor for the last item's sort key."""
    plain = [v.isoformat() if isinstance(v, dt.datetime | dt.date) else v for v in key]
    return base64.urlsafe_b64encode(json.dumps(plain).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, *types: type) -> list[Any] | None:
    """The key inside a cursor, each part read as its type (str, int, float, datetime with an offset, date);
    InvalidCursor for anything this list did not hand out."""
    if not cursor:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidCursor() from exc
    if not isinstance(key, list) or (types and len(key) != len(types)):
        raise InvalidCursor()
    return [_typed(value, kind) for value, kind in zip(key, types, strict=True)] if types else key


def _typed(value: Any, kind: type) -> Any:
    try:
        if kind is dt.datetime:
            at = dt.datetime.fromisoformat(value)
            if at.tzinfo is None:  # cursors we hand out always carry an offset
                raise ValueError("naive")
            return at
        if kind is dt.date:
            return dt.date.fromisoformat(value)
        if kind is int and isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**63:
            return value
        if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if kind is str and isinstance(value, str) and storable_text(value) is None:
            return value
    except (TypeError, ValueError):
        pass
    raise InvalidCursor()


class Keyset:
    """A stable order for a list: sort columns (ending in a unique one), all ascending or all descending."""

    def __init__(self, *columns: Any, descending: bool = False) -> None:
        self.columns = columns
        self.descending = descending
        self.types = tuple(_python_type(c) for c in columns)

    def after(self, key: Sequence[Any]) -> Any:
        """WHERE the row comes after `key` in this order (expanded, so every backend uses its index)."""
        clause = None
        for column, value in reversed(list(zip(self.columns, key, strict=True))):
            beyond = column < value if self.descending else column > value
            clause = beyond if clause is None else or_(beyond, and_(column == value, clause))
        return clause

    def order(self) -> list[Any]:
        return [c.desc() if self.descending else c.asc() for c in self.columns]

    async def page(self, session: AsyncSession, stmt: Any, request: PageRequest, *,
                   key: Callable[[Any], Sequence[Any]] | None = None, scalars: bool = True,
                   ) -> tuple[list[Any], str | None]:
        """One page of `stmt` in this order: (rows, next_cursor). `key` reads a row's sort key (default: the
        columns' attributes of an ORM row)."""
        after = decode_cursor(request.cursor, *self.types)
        if after is not None:
            stmt = stmt.where(self.after(after))
        result = await session.execute(stmt.order_by(*self.order()).limit(request.limit + 1))
        rows = list(result.scalars() if scalars else result.all())
        return page_of(rows, request.limit, key or self._key)

    def _key(self, row: Any) -> Sequence[Any]:
        return [getattr(row, c.key) for c in self.columns]


def page_of(rows: list[Any], limit: int, key: Callable[[Any], Sequence[Any]]) -> tuple[list[Any], str | None]:
    """Rows fetched with `limit + 1` → (the page, the cursor after its last row, None when no more)."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor(*key(rows[-1]))


def page_list(items: list[T], request: PageRequest, key: Callable[[T], Any]) -> Page[T]:
    """A page of an in-memory list (small collections: the catalogue, a run's stations) by a unique string key."""
    ordered = sorted(items, key=key)
    after = decode_cursor(request.cursor, str)
    if after is not None:
        ordered = [i for i in ordered if key(i) > after[0]]
    rows, next_cursor = page_of(ordered[:request.limit + 1], request.limit, lambda i: [key(i)])
    return Page(items=rows, next_cursor=next_cursor)


def _python_type(column: Any) -> type:
    """What a key column holds, for reading a cursor back (custom types by what they decorate)."""
    kind = getattr(column, "expression", column).type
    while isinstance(kind, TypeDecorator):
        kind = kind.impl_instance if hasattr(kind, "impl_instance") else kind.impl
    for sql_type, python in ((DateTime, dt.datetime), (Date, dt.date), (Boolean, bool), (Integer, int),
                             (Float, float), (Numeric, float)):
        if isinstance(kind, sql_type):
            return python
    return str
