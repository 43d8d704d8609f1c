"""What each role may do at the door, and the jurisdiction check the gateway can make from a request alone.

The table is data: one line per (method, public path) that is not open to every officer. Services
check again on every object they touch (the gateway cannot see inside bodies or stored rows).
Lines not listed fall back to `DEFAULT`: every officer may pass, a platform may not.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl

from shared.auth import Identity

ADMIN = frozenset({"admin"})
DISTRICT = frozenset({"admin", "command"})
OFFICERS = frozenset({"admin", "command", "squadron", "station"})
EVERYONE = OFFICERS | {"platform"}
REPORTERS = DISTRICT | {"platform"}  # who may send incidents and registry records in
INTEGRATORS = ADMIN | {"platform"}  # webhooks: a platform its own, an admin all
DEFAULT = OFFICERS

# (methods, path template, roles). `{x}` is one path segment. First match wins.
RULES: tuple[tuple[str, str, frozenset[str]], ...] = (
    ("GET POST", "/api/v1/accounts", ADMIN),  # the gateway's own (account_api.py checks with this table)
    ("GET PATCH", "/api/v1/accounts/{username}", ADMIN),
    ("POST", "/api/v1/accounts/{username}/password", ADMIN),
    ("POST", "/api/v1/units", ADMIN),
    ("POST", "/api/v1/units:import", ADMIN),
    ("PUT PATCH POST DELETE", "/api/v1/routing-table", ADMIN),
    ("PUT PATCH POST DELETE", "/api/v1/arrival-rates", ADMIN),
    ("PUT", "/api/v1/tracing/models/{id}", ADMIN),
    ("PUT PATCH POST DELETE", "/api/v1/indicators", ADMIN),
    ("POST", "/api/v1/assessment/recompute", DISTRICT),
    ("PUT", "/api/v1/assessment/history", DISTRICT),
    ("POST", "/api/v1/classification/features", DISTRICT),
    ("POST", "/api/v1/incidents", REPORTERS),
    ("POST", "/api/v1/incidents:batch", REPORTERS),
    ("GET", "/api/v1/incidents", EVERYONE),  # a platform reads back its own
    ("GET", "/api/v1/incidents/{id}", EVERYONE),
    ("POST", "/api/v1/activities", EVERYONE),
    ("POST", "/api/v1/activities:batch", EVERYONE),
    ("GET", "/api/v1/activities", EVERYONE),
    ("GET", "/api/v1/activities/{id}", EVERYONE),
    ("POST", "/api/v1/{registry}", REPORTERS),
    ("POST", "/api/v1/{registry}:batch", REPORTERS),
    ("GET", "/api/v1/{registry}", EVERYONE),
    ("GET", "/api/v1/{registry}/{id}", EVERYONE),
    ("POST", "/api/v1/webhooks", frozenset({"platform"})),
    ("GET", "/api/v1/webhooks", INTEGRATORS),
    ("GET DELETE", "/api/v1/webhooks/{id}", INTEGRATORS),
    ("GET", "/api/v1/webhooks/{id}/deliveries", INTEGRATORS),
    ("PUT", "/api/v1/stations/{id}/features", DISTRICT),
    ("PUT DELETE", "/api/v1/stations/{id}/mode-override", DISTRICT),
    ("POST", "/api/v1/classification/runs", DISTRICT),
)
REGISTRIES = ("persons", "vehicles", "enterprises", "villages", "road-sections", "hazards")


@dataclass(frozen=True)
class Rule:
    """Roles allowed for some methods on one path template."""

    methods: frozenset[str]
    pattern: re.Pattern[str]
    roles: frozenset[str]
    template: str


def _compile(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[a-z_]+\})", template)
    regex = "".join(
        f"({'|'.join(map(re.escape, REGISTRIES))})" if p == "{registry}" else "[^/:]+" if p.startswith("{")
        else re.escape(p) for p in parts)
    return re.compile(f"^{regex}$")


COMPILED = tuple(Rule(frozenset(m.split()), _compile(t), roles, t) for m, t, roles in RULES)


def roles_for(method: str, path: str) -> frozenset[str]:
    """The roles that may make this call at all."""
    for rule in COMPILED:
        if method in rule.methods and rule.pattern.match(path):
            return rule.roles
    return DEFAULT


def door_allows(identity: Identity, method: str, path: str) -> bool:
    """Coarse role check at the gateway; services check jurisdiction again on every object."""
    return identity.role in roles_for("GET" if method == "HEAD" else method, path)


_STATION_IN_PATH = re.compile(r"^/api/v1/stations/([^/]+)/")
_SCOPED_PARAMS = ("station_id", "unit_id")


def named_units(path: str, query_string: str) -> list[str]:
    """The station or unit ids a request names in its path (`/stations/{id}/…`) or filters (`station_id`, `unit_id`)."""
    names = []
    if (match := _STATION_IN_PATH.match(path)) is not None:
        names.append(match.group(1))
    if query_string and ("station_id" in query_string or "unit_id" in query_string):
        names += [v for k, v in parse_qsl(query_string, keep_blank_values=True) if k in _SCOPED_PARAMS]
    return names


def zone_of(identity: Identity, parents: Mapping[str, str | None] | None) -> set[str] | None:
    """The units a station or squadron user may name; None when unrestricted or not known here."""
    if identity.role == "station":
        return {identity.unit_id or ""}
    if identity.role == "squadron":
        if parents is None:
            return None  # the unit tree is not known yet: the service's own check decides
        own = identity.unit_id or ""
        return {own} | {unit for unit, parent in parents.items() if parent == own}
    return None


def within_jurisdiction(identity: Identity, names: Iterable[str], parents: Mapping[str, str | None] | None) -> bool:
    """Whether every unit the request names lies in the caller's jurisdiction (outside → the gateway says 404)."""
    names = list(names)
    if not names:
        return True
    zone = zone_of(identity, parents)
    return zone is None or all(name in zone for name in names)
