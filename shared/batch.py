"""The one batch convention: a JSON array or NDJSON body, an item cap, per-item results in request order.

A body that is not a batch at all (not an array, not JSON, over the cap) is a 422 `invalid-batch` problem.
Inside a batch each item stands alone: a line that is not JSON, or an item that fails its schema, is rejected
with its own result, shaped as a problem (`type` `invalid-batch-item`, `status` 422, `index`, `errors`),
while the others go in. Results: 201 created, 200 already there (idempotent), 422 rejected.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from fastapi import Request
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from shared.errors import TYPE_BASE, InvalidBatch

T = TypeVar("T")
R = TypeVar("R", bound="ItemResult")

MAX_ITEMS = 1000
NDJSON = ("application/x-ndjson", "application/ndjson")
ITEM_PROBLEM = TYPE_BASE + "invalid-batch-item"


class ItemError(BaseModel):
    """What is wrong with one item: where (`loc` within the item) and why."""

    loc: list[str | int]
    msg: str


class ItemResult(BaseModel):
    """One item's outcome, by its position in the request; a rejected item reads as a problem."""

    index: int = Field(description="the item's position in the request, from 0")
    status: Literal[200, 201, 422] = Field(description="201 created, 200 already there, 422 rejected")
    id: str | None = None
    type: str | None = Field(None, description=f"on a rejected item: {ITEM_PROBLEM}")
    title: str | None = None
    errors: list[ItemError] | None = None

    @classmethod
    def rejected(cls, index: int, errors: list[ItemError], **extra: Any) -> ItemResult:
        return cls(index=index, status=422, type=ITEM_PROBLEM, title="Invalid batch item", errors=errors, **extra)


class BatchOut(BaseModel, Generic[R]):
    """Per-item results in request order, and the counts."""

    results: list[R]
    created: int
    existing: int
    rejected: int

    @classmethod
    def of(cls, results: list[Any], **extra: Any) -> Any:
        return cls(results=results, created=sum(r.status == 201 for r in results),
                   existing=sum(r.status == 200 for r in results),
                   rejected=sum(r.status == 422 for r in results), **extra)


@dataclass
class Unreadable:
    """An NDJSON line that is not JSON: rejected on its own."""

    msg: str


def batch_body_schema(item_ref: str, *, max_items: int = MAX_ITEMS) -> dict[str, Any]:
    """The OpenAPI request body of a batch endpoint (`openapi_extra={"requestBody": ...}`)."""
    return {"required": True, "content": {
        "application/json": {"schema": {"type": "array", "maxItems": max_items, "items": {"$ref": item_ref}}},
        "application/x-ndjson": {"schema": {"type": "string", "description": "one item (a JSON object) per line"}},
    }}


async def read_batch(request: Request, *, max_items: int = MAX_ITEMS) -> list[Any]:
    """The raw items of a batch body, in order (an unreadable NDJSON line is an `Unreadable` item)."""
    raw = await request.body()
    if request.headers.get("content-type", "").split(";")[0].strip().lower() in NDJSON:
        items: list[Any] = []
        for line in raw.splitlines():
            if not line.strip():
                continue
            try:
                items.append(json.loads(line))
            except (ValueError, UnicodeDecodeError) as exc:
                items.append(Unreadable(f"not a JSON line: {exc}"))
    else:
        try:
            items = json.loads(raw or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidBatch(f"the body is not JSON: {exc}", parameter="body") from exc
        if not isinstance(items, list):
            raise InvalidBatch("a batch is a JSON array of items (or NDJSON, content-type application/x-ndjson)",
                               parameter="body")
    if len(items) > max_items:
        raise InvalidBatch(f"a batch holds at most {max_items} items; this one has {len(items)}",
                           parameter="body", max_items=max_items)
    return items


def errors_of(exc: ValidationError) -> list[ItemError]:
    """A schema failure as item errors."""
    return [ItemError(loc=[p if isinstance(p, int) else str(p) for p in e["loc"]], msg=e["msg"])
            for e in exc.errors()]


def validated(items: list[Any], schema: Any, result: type[ItemResult] = ItemResult,
              ) -> tuple[list[tuple[int, T]], dict[int, ItemResult]]:
    """Each raw item checked against its schema: ([(index, item)], {index: rejection})."""
    adapter = TypeAdapter(schema)
    valid: list[tuple[int, Any]] = []
    rejected: dict[int, ItemResult] = {}
    for index, raw in enumerate(items):
        if isinstance(raw, Unreadable):
            rejected[index] = result.rejected(index, [ItemError(loc=[], msg=raw.msg)])
            continue
        try:
            valid.append((index, adapter.validate_python(raw)))
        except ValidationError as exc:
            rejected[index] = result.rejected(index, errors_of(exc))
    return valid, rejected
