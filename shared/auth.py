"""Bearer tokens: issued by the gateway, verified by the gateway and by every service."""
from __future__ import annotations

import datetime as dt
from typing import Literal

import jwt
from pydantic import BaseModel, ConfigDict

from shared.errors import Unauthorized
from shared.settings import Settings

ALGORITHM = "HS256"  # pinned: a token with any other algorithm is refused
Role = Literal["admin", "command", "squadron", "station", "platform"]


class Identity(BaseModel):
    """Who is calling: username, role and the unit whose jurisdiction bounds what they see."""

    model_config = ConfigDict(frozen=True)
    username: str
    role: Role
    unit_id: str | None = None

    @property
    def sees_whole_district(self) -> bool:
        """Command-centre and admin users see every station."""
        return self.role in ("admin", "command")


def issue_token(settings: Settings, identity: Identity, *, ttl_s: int | None = None) -> str:
    """A signed access token for the identity."""
    now = dt.datetime.now(dt.UTC)
    claims = {
        "sub": identity.username,
        "role": identity.role,
        "unit_id": identity.unit_id,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + dt.timedelta(seconds=ttl_s or settings.token_ttl_s),
    }
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm=ALGORITHM)


def verify_token(settings: Settings, token: str) -> Identity:
    """The identity in a valid token; Unauthorized otherwise."""
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret.get_secret_value(),
            algorithms=[ALGORITHM],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": ["exp", "iat", "iss", "aud", "sub", "role"]},
        )
        return Identity(username=claims["sub"], role=claims["role"], unit_id=claims.get("unit_id"))
    except (jwt.PyJWTError, ValueError) as exc:
        raise Unauthorized(f"invalid token: {exc}") from exc


def bearer(authorization: str | None) -> str:
    """The token in an `Authorization: Bearer …` header."""
    if not authorization:
        raise Unauthorized("missing bearer token")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("expected `Authorization: Bearer <token>`")
    return token
