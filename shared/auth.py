"""Bearer tokens: public ones the gateway issues to callers, internal ones it passes on to services.

Every token is an HS256 JWT with a pinned algorithm, issuer, audience, expiry and required claims.
Three kinds, told apart by the `typ` claim and the audience, so one can never stand in for another:

- `access` (audience `jwt_audience`): what a caller sends to the gateway;
- `refresh` (same audience, long-lived): only good at the token endpoint, for the mobile app;
- `internal` (audience `jwt_internal_audience`, one minute): what the gateway sends a service for
  one caller. Services accept nothing else, so a public token replayed straight at a service is
  refused and the only way in is through the gateway's checks.
"""
from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

import jwt
from pydantic import BaseModel, ConfigDict, ValidationError

from shared.errors import Unauthorized
from shared.settings import Settings

ALGORITHM = "HS256"  # pinned: a token with any other algorithm (or none) is refused
Role = Literal["admin", "command", "squadron", "station", "platform"]
TokenType = Literal["access", "refresh", "internal"]
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub", "role", "typ", "jti"]
INTERNAL_TTL_S = 60
LEEWAY_S = 5  # clock skew tolerated between gateway and service hosts


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


def issue_token(settings: Settings, identity: Identity, *, ttl_s: int | None = None,
                typ: TokenType = "access") -> str:
    """A signed token for the identity (an access token unless `typ` says otherwise)."""
    now = dt.datetime.now(dt.UTC)
    if ttl_s is None:
        ttl_s = {"access": settings.token_ttl_s, "refresh": settings.refresh_ttl_s, "internal": INTERNAL_TTL_S}[typ]
    claims = {
        "sub": identity.username,
        "role": identity.role,
        "unit_id": identity.unit_id,
        "typ": typ,
        "jti": uuid.uuid4().hex,
        "iss": settings.jwt_issuer,
        "aud": _audience(settings, typ),
        "iat": now,
        "exp": now + dt.timedelta(seconds=ttl_s),
    }
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm=ALGORITHM)


def issue_internal_token(settings: Settings, identity: Identity) -> str:
    """A one-minute token a service accepts for this identity (minted by the gateway per caller)."""
    return issue_token(settings, identity, typ="internal")


def decode_claims(settings: Settings, token: str, *, typ: TokenType = "access") -> dict:
    """The verified claims of a token of the given kind; Unauthorized otherwise."""
    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") != ALGORITHM:  # PyJWT refuses it too; say so plainly
            raise Unauthorized(f"invalid token: algorithm must be {ALGORITHM}")
        claims = jwt.decode(
            token,
            settings.jwt_secret.get_secret_value(),
            algorithms=[ALGORITHM],
            audience=_audience(settings, typ),
            issuer=settings.jwt_issuer,
            leeway=LEEWAY_S,
            options={"require": REQUIRED_CLAIMS, "verify_signature": True, "verify_exp": True,
                     "verify_iat": True, "verify_aud": True, "verify_iss": True},
        )
    except jwt.PyJWTError as exc:
        raise Unauthorized(f"invalid token: {exc}") from exc
    if claims.get("typ") != typ:
        raise Unauthorized(f"invalid token: a {claims.get('typ')} token is not an {typ} token")
    return claims


def identity_of(claims: dict) -> Identity:
    """The identity carried by verified claims; Unauthorized when they do not make one."""
    try:
        identity = Identity(username=claims["sub"], role=claims["role"], unit_id=claims.get("unit_id"))
    except (ValidationError, KeyError, TypeError) as exc:
        raise Unauthorized("invalid token: claims do not name a valid identity") from exc
    if identity.role in ("station", "squadron") and not identity.unit_id:
        raise Unauthorized(f"invalid token: a {identity.role} token must name its unit")
    return identity


def verify_token(settings: Settings, token: str, *, typ: TokenType = "access") -> Identity:
    """The identity in a valid token of the given kind (access by default); Unauthorized otherwise."""
    return identity_of(decode_claims(settings, token, typ=typ))


def verify_internal_token(settings: Settings, token: str) -> Identity:
    """The identity in a valid internal token (what services accept); Unauthorized otherwise."""
    return verify_token(settings, token, typ="internal")


def bearer(authorization: str | None) -> str:
    """The token in an `Authorization: Bearer …` header."""
    if not authorization:
        raise Unauthorized("missing bearer token")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("expected `Authorization: Bearer <token>`")
    return token


def _audience(settings: Settings, typ: TokenType) -> str:
    return settings.jwt_internal_audience if typ == "internal" else settings.jwt_audience
