"""The authorization matrix: for every public (method, path), what each role gets for an object inside its
jurisdiction and for one outside it. Adding a route means adding one line here.

Codes: `ok` (allowed: 2xx, or 409 for a state change the object's status refuses), `deny` (403),
`hide` (404: outside the caller's jurisdiction, existence not revealed), `none` (a list filtered on a unit
outside the jurisdiction: 404, or 200 with no items), `a/b` (a inside, b outside).
"Inside" is ps-yiqiao's (the station user's own station, in the squadron user's zone, reported by
the platform user); "outside" is ps-chengxiang's (another squadron, reported by command).
Path parameters are filled from those objects by name; `query` names filters filled the same way.
"""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

ROLES = ("admin", "command", "squadron", "station", "platform")


@dataclass(frozen=True)
class Line:
    """One route's expected outcomes per role: (inside, outside)."""

    method: str
    path: str
    expect: dict[str, tuple[str, str]]
    query: dict[str, str] = field(default_factory=dict)
    body: Any = None  # JSON body; callables get the objects dict ("inside"/"outside" ids)
    ok_also: tuple[int, ...] = ()  # other statuses that count as allowed (e.g. 404 for an id no fixture makes)


def _codes(admin: str, command: str, squadron: str, station: str, platform: str) -> dict[str, tuple[str, str]]:
    out = {}
    for role, code in zip(ROLES, (admin, command, squadron, station, platform), strict=True):
        inside, _, outside = code.partition("/")
        out[role] = (inside, outside or inside)
    return out


# presets (admin, command, squadron, station, platform)
SCOPED = _codes("ok", "ok", "ok/hide", "ok/hide", "deny")  # officers within their jurisdiction
SCOPED_PLATFORM_OWN = _codes("ok", "ok", "ok/hide", "ok/hide", "ok/hide")  # …and a platform its own
SCOPED_LIST = _codes("ok", "ok", "ok/none", "ok/none", "deny")  # a list filtered on one unit
SCOPED_LIST_PLATFORM_OWN = _codes("ok", "ok", "ok/none", "ok/none", "ok/none")
OFFICERS = _codes("ok", "ok", "ok", "ok", "deny")  # not about any one station
EVERYONE = _codes("ok", "ok", "ok", "ok", "ok")
DISTRICT = _codes("ok", "ok", "deny", "deny", "deny")
ADMIN = _codes("ok", "deny", "deny", "deny", "deny")
REPORTERS = _codes("ok", "ok", "deny", "deny", "ok")
INTEGRATORS = _codes("ok", "deny", "deny", "deny", "ok")  # webhooks: a platform its own, an admin all
PLATFORMS = _codes("deny", "deny", "deny", "deny", "ok")


def _later() -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)).isoformat()


def _activity(objects: dict) -> dict:
    return {"external_id": f"matrix-{uuid.uuid4().hex}", "kind": "education", "station_id": objects["station_id"],
            "occurred_at": dt.datetime.now(dt.UTC).isoformat(), "count": 3}


def _incident(objects: dict, where: str) -> dict:
    lat, lon = (30.10, 120.45) if where == "inside" else (30.10, 120.25)
    return {"external_id": f"matrix-{objects['incident_id']}-{where}", "kind": "accident",
            "occurred_at": "2026-05-02T08:30:00+08:00", "location": {"lat": lat, "lon": lon},
            "severity": {"deaths": 0, "injuries": 0}, "parties": [{"role": "driver", "person": {}}]}


REGISTRIES = ("persons", "vehicles", "enterprises", "villages", "road-sections", "hazards")

MATRIX: tuple[Line, ...] = (
    # gateway
    Line("POST", "/api/v1/auth/token", EVERYONE),  # checked by its own tests; listed for completeness
    Line("POST", "/api/v1/auth/logout", EVERYONE),  # whoever holds a refresh token (tests/gateway/test_logins.py)
    Line("GET", "/api/v1/me", EVERYONE),
    Line("GET", "/api/v1/labels", EVERYONE),  # anonymous too: texts of codes, no data (test_i18n)
    Line("GET", "/api/v1/audit", ADMIN),
    Line("GET", "/api/v1/admin/dead-letters", ADMIN),
    Line("POST", "/api/v1/admin/dead-letters/{service}/{dead_letter_id}/replay", ADMIN, ok_also=(404,)),
    Line("GET", "/api/v1/accounts", ADMIN),
    Line("POST", "/api/v1/accounts", ADMIN, body=lambda o: {"username": f"matrix-{uuid.uuid4().hex[:12]}",
                                                            "role": "command"}),
    Line("GET", "/api/v1/accounts/{username}", ADMIN, ok_also=(404,)),
    Line("PATCH", "/api/v1/accounts/{username}", ADMIN, ok_also=(404,), body={"disabled": False}),
    Line("POST", "/api/v1/accounts/{username}/password", ADMIN, ok_also=(404,)),
    # dispatch: units and stations
    Line("GET", "/api/v1/units", OFFICERS),
    Line("GET", "/api/v1/units/areas", OFFICERS),
    Line("GET", "/api/v1/units/{unit_id}", OFFICERS),
    Line("POST", "/api/v1/units", ADMIN, body=lambda o: {"id": "brigade", "name": "Brigade", "kind": "brigade"}),
    Line("POST", "/api/v1/units:import", ADMIN),
    Line("GET", "/api/v1/stations", OFFICERS),
    # dispatch: incidents
    Line("POST", "/api/v1/incidents", REPORTERS, body=_incident),
    Line("POST", "/api/v1/incidents:batch", REPORTERS, body=lambda o: []),
    Line("GET", "/api/v1/incidents", SCOPED_LIST_PLATFORM_OWN, query={"station_id": "{station_id}"}),
    Line("GET", "/api/v1/incidents/{incident_id}", SCOPED_PLATFORM_OWN),
    Line("POST", "/api/v1/incidents/{incident_id}/arrival", _codes("ok", "ok", "ok/hide", "ok/hide", "deny"),
         body=lambda o: {"arrived_at": _later()}),
    Line("GET", "/api/v1/arrival-rates", OFFICERS),
    Line("GET", "/api/v1/routing-table", OFFICERS),
    Line("PUT", "/api/v1/routing-table", ADMIN),
    # dispatch: task orders
    Line("GET", "/api/v1/tasks", SCOPED_LIST, query={"unit_id": "{unit_id}"}),
    Line("GET", "/api/v1/tasks/stream", OFFICERS),  # scoping of what it sends: test_scoping.py
    Line("GET", "/api/v1/tasks/{task_id}", SCOPED),
    # only the receiving unit (or an admin) accepts an order
    Line("POST", "/api/v1/tasks/{task_id}/transitions", _codes("ok", "deny", "deny/hide", "ok/hide", "deny"),
         body=lambda o: {"action": "accept"}),
    Line("POST", "/api/v1/tasks:bulk", OFFICERS),
    # evidence photos: the receiving unit adds them (no sample body: 415 once past every check); reads as the order
    Line("POST", "/api/v1/tasks/{task_id}/photos", _codes("ok", "deny", "deny/hide", "ok/hide", "deny")),
    Line("GET", "/api/v1/tasks/{task_id}/photos", SCOPED),
    Line("GET", "/api/v1/tasks/{task_id}/photos/{photo_id}", SCOPED, ok_also=(404,)),
    Line("GET", "/api/v1/tasks/{task_id}/photos/{photo_id}/thumbnail", SCOPED, ok_also=(404,)),
    # classification
    Line("GET", "/api/v1/stations/{station_id}/features", SCOPED),
    Line("PUT", "/api/v1/stations/{station_id}/features", DISTRICT),
    Line("POST", "/api/v1/classification/features", DISTRICT),
    Line("POST", "/api/v1/classification/runs", DISTRICT),
    Line("GET", "/api/v1/classification/runs", DISTRICT),
    Line("GET", "/api/v1/classification/runs/{run_id}", DISTRICT, ok_also=(404,)),
    Line("GET", "/api/v1/classification/modes", OFFICERS),
    Line("GET", "/api/v1/stations/{station_id}/mode-override", SCOPED, ok_also=(404,)),
    Line("PUT", "/api/v1/stations/{station_id}/mode-override", DISTRICT),
    Line("DELETE", "/api/v1/stations/{station_id}/mode-override", DISTRICT, ok_also=(404,)),
    # tracing
    Line("GET", "/api/v1/tracing/models", OFFICERS),
    Line("GET", "/api/v1/tracing/models/{model_id}", OFFICERS),
    Line("PUT", "/api/v1/tracing/models/{model_id}", ADMIN),
    Line("GET", "/api/v1/incidents/{incident_id}/trace", SCOPED),
    Line("GET", "/api/v1/tracing/incidents/{incident_id}/fired", SCOPED),
    # tracing: registries (idempotent on natural keys); a platform reads back what it sent
    *(line for name in REGISTRIES for line in (
        Line("POST", f"/api/v1/{name}", REPORTERS, ok_also=(422,)),  # (422: the sample body is empty)
        Line("POST", f"/api/v1/{name}:batch", REPORTERS, body=lambda o: []),
        Line("GET", f"/api/v1/{name}", EVERYONE),
        Line("GET", f"/api/v1/{name}/{{key}}", EVERYONE, ok_also=(404,)),
    )),
    # assessment
    Line("GET", "/api/v1/assessment/tallies", OFFICERS, query={"period": "2026-11"}),
    # naming another station in a body is refused outright (stations are public; the object is the caller's)
    Line("POST", "/api/v1/activities", _codes("ok", "ok", "ok/deny", "ok/deny", "ok"), body=_activity),
    Line("POST", "/api/v1/activities:batch", EVERYONE, body=lambda o: []),
    # a platform reads back the activities it sent, whichever station they concern
    Line("GET", "/api/v1/activities", _codes("ok", "ok", "ok/none", "ok/none", "ok"),
         query={"station_id": "{station_id}"}),
    Line("GET", "/api/v1/indicators", OFFICERS),
    Line("GET", "/api/v1/indicators/versions", OFFICERS),
    Line("PUT", "/api/v1/indicators", ADMIN),
    Line("GET", "/api/v1/assessment/scores", OFFICERS),
    Line("GET", "/api/v1/assessment/history", OFFICERS),
    Line("PUT", "/api/v1/assessment/history", DISTRICT),
    Line("GET", "/api/v1/stations/{station_id}/score", SCOPED),
    Line("POST", "/api/v1/assessment/recompute", DISTRICT),
    Line("GET", "/api/v1/board", SCOPED_LIST, query={"station_id": "{station_id}"}),
    Line("POST", "/api/v1/reports/jobs", OFFICERS),
    Line("GET", "/api/v1/reports/jobs/{job_id}", OFFICERS, ok_also=(404,)),
    Line("GET", "/api/v1/reports/jobs/{job_id}/file", OFFICERS, ok_also=(404,)),
    Line("GET", "/api/v1/reports/{kind}", OFFICERS),
    # webhooks (422: the sample receiver is a private address, refused without an allow-list)
    Line("POST", "/api/v1/webhooks", PLATFORMS, ok_also=(422,),
         body={"url": "http://10.99.0.1/hook", "events": ["task_order.verified"]}),
    Line("GET", "/api/v1/webhooks", INTEGRATORS),
    Line("GET", "/api/v1/webhooks/{webhook_id}", INTEGRATORS, ok_also=(404,)),
    Line("DELETE", "/api/v1/webhooks/{webhook_id}", INTEGRATORS, ok_also=(404,)),
    Line("GET", "/api/v1/webhooks/{webhook_id}/deliveries", INTEGRATORS, ok_also=(404,)),
)

#: values for path parameters that do not depend on jurisdiction
FIXED_PARAMS = {"key": "no-such-key", "model_id": "P01", "run_id": "no-such-run", "job_id": "no-such-job",
                "kind": "daily", "service": "dispatch", "dead_letter_id": "999999999",
                "webhook_id": "no-such-webhook", "username": "no-such-account", "photo_id": "no-such-photo"}

#: (method, path, role) where a service answers more leniently than the matrix when called directly
#: (the gateway refuses these; the service should too). Listed so a gap stays visible: the direct
#: check is a strict xfail, so a fixed service makes it fail until its line is removed here. None left:
#: every service decides jurisdiction through shared/scope.py as the gateway does.
SERVICE_GAPS: dict[tuple[str, str, str], str] = {}
