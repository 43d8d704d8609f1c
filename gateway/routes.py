"""Which upstream serves which public path (what each role may do is in policy.py)."""
from __future__ import annotations

import re

# Ordered: the first match wins. Paths not listed are 404 at the gateway.
ROUTES: tuple[tuple[str, str], ...] = (
    (r"^/api/v1/stations/[^/]+/(features|mode-override)$", "classification"),
    (r"^/api/v1/stations/[^/]+/score$", "assessment"),
    (r"^/api/v1/incidents/[^/]+/trace$", "tracing"),
    (r"^/api/v1/(incidents|tasks|units|stations|arrival-rates|routing-table|webhooks)(:[a-z]+)?(/.*)?$", "dispatch"),
    (r"^/api/v1/classification(/.*)?$", "classification"),
    (r"^/api/v1/(tracing|persons|vehicles|enterprises|villages|road-sections|hazards)(:[a-z]+)?(/.*)?$", "tracing"),
    (r"^/api/v1/(assessment|board|reports|activities|indicators)(:[a-z]+)?(/.*)?$", "assessment"),
)

#: uploads whose bodies may exceed max_body_bytes, up to max_upload_bytes (photos)
UPLOADS = re.compile(r"^/api/v1/tasks/[^/]+/photos$")

_COMPILED = tuple((re.compile(p), name) for p, name in ROUTES)


class Router:
    """Compiled routing table."""

    def __init__(self, upstreams: dict[str, str], extra: list[tuple[str, str]] = ()) -> None:
        self.table = [(re.compile(p), url.rstrip("/")) for p, url in extra]
        self.table += [(re.compile(p), upstreams[name].rstrip("/")) for p, name in ROUTES]

    def upstream(self, path: str) -> str | None:
        """The base URL serving a path, or None."""
        return next((url for pattern, url in self.table if pattern.match(path)), None)



def service_of(path: str) -> str | None:
    """The service a public path belongs to (by the routing table alone), or None."""
    return next((name for pattern, name in _COMPILED if pattern.match(path)), None)
