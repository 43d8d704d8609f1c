"""What the gateway's own routes and its lifespan share, kept on `app.state.gateway` (no closures).

The hot path's part is `core` (proxy.GatewayCore); the rest serves the token endpoint, the audit
list, readiness and the metrics. The database parts and the upstream client are set in the lifespan.
"""
from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.accounts import AccountStore
from gateway.config import GatewaySettings
from gateway.limits import RateLimiter, client_address, trusted_networks
from gateway.logins import LoginGuard, RefreshTokens
from gateway.proxy import GatewayCore
from shared.auth import Identity, bearer, issue_internal_token
from shared.observability import Metrics

#: who the gateway is when it asks a service itself (the unit tree, OpenAPI documents, demo unit logins)
GATEWAY_IDENTITY = Identity(username="gateway", role="admin")


@dataclass
class GatewayState:
    """The gateway's long-lived parts (one per app)."""

    settings: GatewaySettings
    core: GatewayCore
    metrics: Metrics
    login_limiter: RateLimiter
    sessions: async_sessionmaker[AsyncSession] | None = None
    engine: AsyncEngine | None = None
    accounts: AccountStore | None = None
    demo_hash: str | None = None  # the demo password's hash while demo accounts are enabled
    logins: LoginGuard | None = None
    refresh_tokens: RefreshTokens | None = None

    def __post_init__(self) -> None:
        self.trusted = trusted_networks(self.settings.trusted_proxies)

    def client(self, request: Request) -> str:
        """The caller's address (X-Forwarded-For counts only from a trusted proxy)."""
        return client_address(request.client.host if request.client else None,
                              request.headers.get("x-forwarded-for"), self.trusted)

    def caller(self, authorization: str | None) -> Identity:
        """The identity behind an `Authorization: Bearer …` header; Unauthorized otherwise."""
        return self.core.tokens.identity(bearer(authorization))

    async def service_json(self, service: str, path: str) -> dict | list:
        """A service's JSON answer to a GET, asked as the gateway (raises on any failure)."""
        assert self.core.client is not None, "the gateway's lifespan has not started"
        url = self.settings.upstreams()[service] + path
        headers = {"authorization": "Bearer " + issue_internal_token(self.settings, GATEWAY_IDENTITY)}
        async with self.core.client.get(url, headers=headers) as r:
            r.raise_for_status()
            return await r.json()

    async def unit_list(self) -> list[dict]:
        """Every unit, from dispatch (for the unit tree), page by page."""
        units: list[dict] = []
        cursor: str | None = ""
        while cursor is not None:
            after = f"&cursor={cursor}" if cursor else ""
            page = await self.service_json("dispatch", f"/api/v1/units?limit=500{after}")
            assert isinstance(page, dict)
            units.extend(page["items"])
            cursor = page.get("next_cursor")
        return units

    async def service_document(self, service: str) -> dict:
        """A service's own OpenAPI document."""
        doc = await self.service_json(service, "/internal/openapi.json")
        assert isinstance(doc, dict)
        return doc


def state_of(request: Request) -> GatewayState:
    """The gateway's state, from a request to one of its own routes."""
    return request.app.state.gateway
