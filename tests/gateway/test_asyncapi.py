"""The AsyncAPI document: valid AsyncAPI 3.0, every contract in it, the committed copy current, served."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import httpx
import jsonschema
import pytest

from gateway import asyncapi
from gateway.app import create_app
from gateway.config import GatewaySettings
from shared.events import ALL_FACTS

SCHEMA = Path(__file__).resolve().parents[1] / "data" / "asyncapi" / "asyncapi-3.0.0.schema.json"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))


def test_document_is_valid_asyncapi_3(validator: jsonschema.Draft7Validator) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message[:200]}" for e in validator.iter_errors(asyncapi.document())]
    assert errors == []


def test_the_validator_catches_a_broken_document(validator: jsonschema.Draft7Validator) -> None:
    broken = copy.deepcopy(asyncapi.document())
    broken["operations"][next(iter(broken["operations"]))]["action"] = "publish"  # AsyncAPI 2 wording
    assert not validator.is_valid(broken)


def test_every_subject_with_its_version_and_payload_is_listed() -> None:
    doc = asyncapi.document()
    assert {c["address"] for c in doc["channels"].values()} == {f.subject for f in ALL_FACTS}
    for fact in ALL_FACTS:
        message = doc["components"]["messages"][fact.__name__]
        assert message["x-version"] == int(fact.subject.rsplit(".v", 1)[1])
        envelope = message["payload"]
        assert envelope["properties"]["type"]["const"] == fact.subject
        assert envelope["properties"]["specversion"]["const"] == "1.0"
        data = doc["components"]["schemas"][fact.__name__]
        assert set(data["properties"]) == set(fact.model_fields)


def test_committed_document_matches_the_contracts() -> None:
    """Fails when a contract in shared/events.py changes and docs/asyncapi.json was not regenerated."""
    assert asyncapi.COMMITTED.read_text(encoding="utf-8") == asyncapi.render(), (
        "docs/asyncapi.json is stale: run `python -m gateway.asyncapi --write`")


async def test_served_without_a_token() -> None:
    app = create_app(GatewaySettings(environment="test"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
        answer = await client.get("/api/v1/asyncapi.json")
    assert answer.status_code == 200
    assert answer.json() == json.loads(asyncapi.render())
