"""Which upstream serves which public path, and what each role may do at the door."""
from __future__ import annotations

import re

from shared.auth import Identity

# Ordered: the first match wins. Paths not listed are 404 at the gateway.
ROUTES: tuple[tuple[str, str], ...] = (
    (r"^/api/v1/stations/[^/]+/(features|mode-override)$", "classification"),
    (r"^/api/v1/stations/[^/]+/score$", "assessment"),
    (r"^/api/v1/incidents/[^/]+/trace$", "tracing"),
    (r"^/api/v1/(incidents|tasks|units|stations|arrival-rates|routing-table)(:[a-z]+)?(/.*)?$", "dispatch"),
    (r"^/api/v1/classification(/.*)?$", "classification"),
    (r"^/api/v1/(tracing|persons|vehicles|enterprises|villages|road-sections|hazards)(:[a-z]+)?(/.*)?$", "tracing"),
    (r"^/api/v1/(assessment|board|reports|activities|indicators)(:[a-z]+)?(/.*)?$", "assessment"),
)

_PLATFORM_WRITES = re.compile(
    r"^/api/v1/(incidents|activities|persons|vehicles|enterprises|villages|road-sections|hazards)(:batch)?$")
_PLATFORM_READS = re.compile(r"^/api/v1/incidents(/[^/]+)?$")


class Router:
    """Compiled routing table."""

    def __init__(self, upstreams: dict[str, str], extra: list[tuple[str, str]] = ()) -> None:
        self.table = [(re.compile(p), url.rstrip("/")) for p, url in extra]
        self.table += [(re.compile(p), upstreams[name].rstrip("/")) for p, name in ROUTES]

    def upstream(self, path: str) -> str | None:
        """The base URL serving a path, or None."""
        return next((url for pattern, url in self.table if pattern.match(path)), None)


def door_allows(identity: Identity, method: str, path: str) -> bool:
    """Coarse role check at the gateway; services check jurisdiction again on every object."""
    if identity.role == "platform":
        if method == "POST":
            return bool(_PLATFORM_WRITES.match(path))
        return method == "GET" and bool(_PLATFORM_READS.match(path))
    return True
