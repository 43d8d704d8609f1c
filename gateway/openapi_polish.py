"""What the merged OpenAPI document adds for people and code generators, in one place (not in every route).

- `tags` with a description for every tag an operation uses (a tag nobody described still gets listed);
- `servers` (the gateway, host and scheme as variables) and `info.contact`/`info.license`;
- short operation ids a generator can name functions after: FastAPI's `<function>_<path>_<method>` loses
  the path and method (`list_activities_api_v1_activities_get` → `list_activities`); an id several routes
  share gets the resource (`create_persons`), and if still shared the service's name;
- a description on every operation (its summary when the route has no docstring);
- a request example on every request body (openapi_examples.py);
- no `Authorization` header parameter (routes declare one to read it; the security scheme says it).
"""
from __future__ import annotations

import re
from typing import Any

from gateway.openapi_examples import add_examples

METHODS = ("get", "put", "post", "delete", "patch")

TAGS: dict[str, str] = {
    "auth": "Log in (OAuth2 password, client credentials, refresh) and ask who the token belongs to.",
    "audit": "The gateway's audit log of writes and logins (admin).",
    "accounts": "Officers and platform clients who may log in: create, list, change, disable, reset (admin).",
    "units": "Stations, squadrons and brigade offices with their areas; the unit tree.",
    "incidents": "Incidents reported by platforms and the command centre: placement in a station's area, "
                 "dispatch to the handling unit, arrival and the 5-minute arrival rate.",
    "tasks": "Task orders: routing to exactly one unit, the loop (accept, start, milestones, submit, verify, "
             "return, reassign), deadlines and escalation, the live stream.",
    "webhooks": "For integrating platforms: signed CloudEvents about task orders on their own incidents.",
    "classification": "Each station's integration mode (basic, deep, full) from its features, runs and "
                      "overrides.",
    "tracing": "The tracing models that turn incidents and registry records into task orders.",
    "registries": "Persons, vehicles, enterprises, villages, road sections and hazards that tracing reads.",
    "assessment": "Station scores per period and mode, history and recomputation.",
    "activities": "Activity records (education, dissuasion, checks, violations…) that the scores count.",
    "indicators": "The scoring indicators and their versions.",
    "board": "The district's board: every station's score and colour.",
    "reports": "Daily, weekly and monthly reports, generated as jobs.",
}

SERVERS = [{"url": "{scheme}://{host}", "description": "the jiaozhi gateway (every public path is under /api/v1)",
            "variables": {"scheme": {"default": "http", "enum": ["http", "https"]},
                          "host": {"default": "127.0.0.1:8000", "description": "host and port of the gateway"}}}]
CONTACT = {"name": "jiaozhi maintainers", "url": "https://jiaozhi.dev"}
LICENSE = {"name": "Apache-2.0", "url": "https://www.apache.org/licenses/LICENSE-2.0"}


def short_id(operation_id: str, path: str, method: str) -> str:
    """FastAPI's default id without the path and method it appends."""
    suffix = re.sub(r"\W", "_", path) + f"_{method}"
    return operation_id[:-len(suffix)] if operation_id.endswith(suffix) and len(operation_id) > len(suffix) \
        else operation_id


def _resource(path: str) -> str:
    """`/api/v1/road-sections/{key}` → `road_sections`."""
    return re.sub(r"\W+", "_", path.removeprefix("/api/v1/").split("/")[0].split(":")[0]).strip("_")


def polish(doc: dict[str, Any], owners: dict[str, str]) -> dict[str, Any]:
    """Add tags, servers, contact, short operation ids and descriptions (in place; returns `doc`).

    `owners` maps each path to the service serving it ("gateway" for the gateway's own)."""
    info = doc.setdefault("info", {})
    info.setdefault("contact", CONTACT)
    info.setdefault("license", LICENSE)
    doc["servers"] = SERVERS
    operations = [(path, method, item[method]) for path, item in doc.get("paths", {}).items()
                  for method in METHODS if method in item]
    shortened = {id(op): short_id(op.get("operationId", ""), path, method) or f"{method}_{path}"
                 for path, method, op in operations}
    for _round in range(2):  # a name several operations share: add the resource, then the service
        taken: dict[str, int] = {}
        for name in shortened.values():
            taken[name] = taken.get(name, 0) + 1
        for path, _method, op in operations:
            if taken[shortened[id(op)]] > 1:
                shortened[id(op)] = (f"{shortened[id(op)]}_{_resource(path)}" if _round == 0
                                     else f"{owners.get(path, 'gateway')}_{shortened[id(op)]}")
    used_tags: list[str] = []
    for _path, _method, op in operations:
        op["operationId"] = shortened[id(op)]
        if "parameters" in op:  # the bearer token is the security scheme's, not a parameter of each call
            op["parameters"] = [p for p in op["parameters"]
                                if not (p.get("in") == "header" and p.get("name", "").lower() == "authorization")]
            if not op["parameters"]:
                del op["parameters"]
        if not op.get("description"):
            op["description"] = (op.get("summary") or op["operationId"].replace("_", " ")).rstrip(".") + "."
        for tag in op.get("tags", []):
            if tag not in used_tags:
                used_tags.append(tag)
    add_examples(doc)
    doc["tags"] = [{"name": tag, "description": TAGS.get(tag, tag.replace("-", " ").capitalize() + ".")}
                   for tag in sorted(used_tags, key=lambda t: (list(TAGS).index(t) if t in TAGS else len(TAGS), t))]
    return doc
