"""The AsyncAPI 3.0 document of the events, generated from the contracts in shared/events.py.

Every `Fact` becomes a channel (its subject is the address), a `send` operation of the service that owns
it, and a message whose payload is the CloudEvents 1.0 envelope with the fact as `data`. The payload
schemas come from the pydantic models themselves, so a changed contract changes the document; the
committed copy (docs/asyncapi.json, written by `python -m gateway.asyncapi --write`) is checked against
it by the test suite. Served without a token at `/api/v1/asyncapi.json`.
"""
from __future__ import annotations

import argparse
import copy
import functools
import json
import sys
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic.json_schema import models_json_schema

from shared.events import ALL_FACTS, OWNERS, Envelope, Fact, stream_name

router = APIRouter(include_in_schema=False)
COMMITTED = Path(__file__).resolve().parent.parent / "docs" / "asyncapi.json"
REF = "#/components/schemas/{model}"

HEADERS = {
    "type": "object",
    "description": "NATS message headers set by the outbox relay.",
    "properties": {
        "Nats-Msg-Id": {"type": "string", "description": "the CloudEvent id: JetStream drops a re-publish of the "
                                                         "same id within its 10-minute duplicate window"},
        "X-Request-ID": {"type": "string", "description": "the request that caused the event, for the logs"},
        "traceparent": {"type": "string", "description": "W3C trace context, when tracing is on"},
    },
}


def _version(subject: str) -> int:
    return int(subject.rsplit(".v", 1)[1])


def _name(fact: type[Fact]) -> str:
    return fact.__name__


def _envelope_schema(fact: type[Fact]) -> dict[str, Any]:
    """The CloudEvents envelope (shared/events.Envelope) with `type` fixed to the subject and `data` the fact."""
    schema = copy.deepcopy(Envelope.model_json_schema())
    schema.pop("title", None)
    props = schema["properties"]
    props["type"] = {"type": "string", "const": fact.subject, "description": "the subject the event is published on"}
    props["source"]["description"] = f"the publishing service, `/jiaozhi/{fact.owner()}`"
    props["id"]["description"] = "unique event id (consumers de-duplicate on it)"
    props["data"] = {"$ref": REF.format(model=_name(fact))}
    return {"title": f"{_name(fact)} CloudEvent", **schema}


def document() -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of every subject in shared/events.py."""
    _, definitions = models_json_schema([(fact, "serialization") for fact in ALL_FACTS], ref_template=REF)
    schemas: dict[str, Any] = dict(sorted(definitions.get("$defs", {}).items()))
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for fact in sorted(ALL_FACTS, key=lambda f: f.subject):
        name, owner, version = _name(fact), fact.owner(), _version(fact.subject)
        summary = (fact.__doc__ or name).strip().splitlines()[0]
        messages[name] = {
            "name": name, "title": f"{name} v{version}", "summary": summary,
            "contentType": "application/json",
            "headers": HEADERS,
            "payload": _envelope_schema(fact),
            "correlationId": {"description": "the CloudEvent id", "location": "$message.payload#/id"},
            "x-subject": fact.subject, "x-version": version, "x-owner": owner,
        }
        channel = fact.subject
        channels[channel] = {
            "address": fact.subject, "title": fact.subject,
            "description": f"Published by {owner} into the JetStream stream {stream_name(owner)} "
                           f"(subjects `{owner}.>`). {summary}",
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
        }
        operations[f"{owner}Sends{name}V{version}"] = {
            "action": "send", "channel": {"$ref": f"#/channels/{channel}"},
            "summary": f"{owner} publishes {fact.subject} through its transactional outbox",
            "messages": [{"$ref": f"#/channels/{channel}/messages/{name}"}],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "jiaozhi events",
            "version": "1",
            "description": (
                "Every message that crosses a service boundary. Subjects are `<owner>.<entity>.<event>.v<N>`; one "
                "JetStream stream per owner (" + ", ".join(stream_name(o) for o in OWNERS) + ") holds `<owner>.>`. "
                "Each message is a CloudEvents 1.0 envelope in structured JSON mode whose `type` is its subject and "
                "whose `data` is the versioned contract. A payload changes only additively; a breaking change is "
                "a new subject with a new version, and consumers handle old and new."),
            "contact": {"name": "jiaozhi maintainers", "url": "https://jiaozhi.dev"},
            "license": {"name": "Apache-2.0", "url": "https://www.apache.org/licenses/LICENSE-2.0"},
        },
        "defaultContentType": "application/json",
        "servers": {"nats": {"host": "nats:4222", "protocol": "nats",
                             "description": "NATS JetStream (each component has its own user; deploy/nats_auth.py)"}},
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }


@functools.cache
def _rendered() -> bytes:
    return json.dumps(document(), ensure_ascii=False).encode()


@router.get("/api/v1/asyncapi.json")
async def asyncapi_document() -> JSONResponse:
    """The AsyncAPI document (the same for every caller: no token needed)."""
    return JSONResponse(json.loads(_rendered()))


def render() -> str:
    """The document as committed: indented, keys in generation order, a final newline."""
    return json.dumps(document(), ensure_ascii=False, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Print the document, or `--write` it to docs/asyncapi.json."""
    parser = argparse.ArgumentParser(prog="python -m gateway.asyncapi", description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {COMMITTED.name} under docs/")
    if parser.parse_args(argv).write:
        COMMITTED.write_text(render(), encoding="utf-8")
    else:
        sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
