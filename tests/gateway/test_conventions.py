"""One set of conventions behind one gateway: every list and batch endpoint, taken from the merged OpenAPI
document (not a hand-picked list), answers the same mistakes with the same problem, through the gateway.

- a list (a GET answering a page: `items` and `next_cursor`): a bad cursor is `invalid-cursor`, a limit out of
  range `limit-out-of-range`, a malformed filter value `invalid-parameter`; each names the parameter;
- no GET answers a bare JSON array: every collection is paginated;
- a batch (a body taking NDJSON): a line that is not JSON is rejected on its own, as a problem naming its index,
  and a body that is not a batch is `invalid-batch`.
"""
from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from shared.errors import TYPE_BASE
from tests.gateway.conftest import Live

# runs against the whole system started as processes; one per xdist worker, so its users stay together
pytestmark = [pytest.mark.system, pytest.mark.xdist_group("live")]

PAGING = {"limit", "cursor"}
#: cursors no list hands out: not base64 of JSON, JSON that is not a list, a key of five parts, a NUL in a key
TAMPERED = ["@@@", "bm90LWpzb24", "eyJhIjoxfQ", "WzEsMiwzLDQsNV0", "WyJcdTAwMDAiXQ"]


def _schema(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _answer(doc: dict[str, Any], op: dict[str, Any]) -> dict[str, Any]:
    content = op.get("responses", {}).get("200", {}).get("content", {})
    return _schema(doc, content.get("application/json", {}).get("schema", {}))


def operations(doc: dict[str, Any]) -> tuple[list[tuple[str, dict]], list[tuple[str, dict]], list[str]]:
    """(lists, batches, GETs answering a bare array) of the merged document."""
    lists, batches, arrays = [], [], []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method == "get":
                answer = _answer(doc, op)
                if {"items", "next_cursor"} <= set(answer.get("properties", {})):
                    lists.append((path, op))
                elif answer.get("type") == "array":
                    arrays.append(path)
            body = op.get("requestBody", {}).get("content", {})
            if method == "post" and "application/x-ndjson" in body:
                batches.append((path, op))
    return lists, batches, arrays


@pytest.fixture(scope="module")
def document(live: Live) -> dict[str, Any]:
    return httpx.get(live.gateway + "/api/v1/openapi.json", timeout=30).json()


def _path(live: Live, path: str) -> str | None:
    """The path with its parameters filled from the live system's objects (None if one is unknown)."""
    known = {**live.objects["inside"], "model_id": "P01"}
    filled = re.sub(r"\{(\w+)\}", lambda m: str(known.get(m.group(1), "\0")), path)
    return None if "\0" in filled else filled


def _bad_filter(doc: dict[str, Any], op: dict[str, Any]) -> str | None:
    """A query parameter (not paging) whose value has a type a word cannot have."""
    for param in op.get("parameters", []):
        if param["in"] != "query" or param["name"] in PAGING:
            continue
        schema = _schema(doc, param.get("schema", {}))
        options = [_schema(doc, s) for s in schema.get("anyOf", [schema])]
        if any(s.get("type") in ("integer", "number", "boolean") or "enum" in s or s.get("format") in
               ("date-time", "date") for s in options) and not any(s.get("type") == "string" and "enum" not in s
                                                                  and "format" not in s for s in options):
            return param["name"]
    return None


def _problem(response: httpx.Response, kind: str) -> dict[str, Any]:
    assert response.status_code == 422, f"{response.request.url}: {response.status_code} {response.text[:300]}"
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"] == TYPE_BASE + kind, f"{response.request.url}: {body}"
    return body


def test_every_collection_is_a_page(document: dict[str, Any]) -> None:
    lists, batches, arrays = operations(document)
    assert arrays == [], f"GETs answering a bare array instead of a page: {arrays}"
    assert len(lists) >= 15 and len(batches) >= 6, (len(lists), len(batches))


def test_every_list_refuses_bad_paging_and_filters_with_the_same_problems(live: Live,
                                                                       document: dict[str, Any]) -> None:
    lists, _, _ = operations(document)
    admin = live.headers["admin"]
    checked: dict[str, int] = {"limit": 0, "cursor": 0, "filter": 0}
    with httpx.Client(base_url=live.gateway, headers=admin, timeout=30) as http:
        for path, op in lists:
            url = _path(live, path)
            if url is None:
                continue
            for limit in (0, 501, "many"):
                body = _problem(http.get(url, params={"limit": limit}), "limit-out-of-range")
                assert body["parameter"] == "limit"
            checked["limit"] += 1
            first = http.get(url)
            assert first.status_code == 200, f"{url}: {first.text[:300]}"
            for cursor in TAMPERED:
                body = _problem(http.get(url, params={"cursor": cursor}), "invalid-cursor")
                assert body["parameter"] == "cursor"
            checked["cursor"] += 1
            if (name := _bad_filter(document, op)) is not None:
                body = _problem(http.get(url, params={name: "not-a-value"}), "invalid-parameter")
                assert body["parameter"] == name, body
                checked["filter"] += 1
    assert checked["limit"] >= 15 and checked["filter"] >= 3, checked  # every list reachable, every typed filter


def test_every_batch_rejects_a_bad_line_alone_and_a_non_batch_whole(live: Live, document: dict[str, Any]) -> None:
    _, batches, _ = operations(document)
    admin = live.headers["admin"]
    with httpx.Client(base_url=live.gateway, headers=admin, timeout=30) as http:
        for path, _ in batches:
            url = _path(live, path)
            assert url is not None, path
            answer = http.post(url, content=b"{not json\n", headers={"content-type": "application/x-ndjson"})
            assert answer.status_code == 200, f"{url}: {answer.status_code} {answer.text[:300]}"
            [item] = answer.json()["results"]
            assert (item["index"], item["status"], item["type"]) == (0, 422, TYPE_BASE + "invalid-batch-item")
            assert answer.json()["rejected"] == 1
            body = _problem(http.post(url, json={"not": "an array"}), "invalid-batch")
            assert body["parameter"] == "body"
            _problem(http.post(url, json=[{}] * 1001), "invalid-batch")
