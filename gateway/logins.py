"""Login state kept in the gateway's database, so every worker and replica sees the same:

- `LoginGuard`: failed logins per account **and** client address. After `login_backoff_after` failures
  each further one makes that pair wait twice as long (up to `login_backoff_max_s`); a success clears it.
  Another address is another pair, so nobody can lock a known account for everyone (unit ids are public).
- `RefreshTokens`: every refresh token issued, in the family of the login it came from. A token is traded
  once for the next; traded again within `refresh_grace_s` (the answer was lost on a poor network) it still
  works, later it is a replay and revokes its whole family. Logging out revokes the family.
"""
from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.config import GatewaySettings
from gateway.limits import backoff_s
from gateway.models import LoginFailure, RefreshToken
from shared.db import utcnow
from shared.errors import Unauthorized

FAILURES = LoginFailure.__table__  # type: ignore[attr-defined]
REFRESH = RefreshToken.__table__  # type: ignore[attr-defined]


class LoginGuard:
    """Back-off of failed logins per (account, client address)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: GatewaySettings) -> None:
        self.sessions, self.settings = sessions, settings

    async def wait_s(self, username: str, client: str) -> float:
        """Seconds this account must still wait before trying from this address (0: it may try now)."""
        async with self.sessions() as session:
            until = (await session.execute(select(FAILURES.c.blocked_until).where(
                FAILURES.c.username == username[:64], FAILURES.c.client == client[:64]))).scalar_one_or_none()
        return max(0.0, (until - utcnow()).total_seconds()) if until else 0.0

    async def failed(self, username: str, client: str) -> float:
        """Count a failure (atomically, whichever worker sees it); the wait it now imposes."""
        now, key = utcnow(), {"username": username[:64], "client": client[:64]}
        async with self.sessions() as session, session.begin():
            insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
            statement = insert(FAILURES).values(**key, failures=1, blocked_until=None, updated_at=now)
            statement = statement.on_conflict_do_update(
                index_elements=["username", "client"],
                set_={"failures": FAILURES.c.failures + 1, "updated_at": now}).returning(FAILURES.c.failures)
            failures = (await session.execute(statement)).scalar_one()
            wait = backoff_s(failures, after=self.settings.login_backoff_after,
                             base_s=self.settings.login_backoff_base_s, max_s=self.settings.login_backoff_max_s)
            if wait:
                await session.execute(update(FAILURES).where(*_pair(key)).values(
                    blocked_until=now + dt.timedelta(seconds=wait)))
        return wait

    async def succeeded(self, username: str, client: str) -> None:
        """A good login from this address forgets its failures."""
        async with self.sessions() as session, session.begin():
            await session.execute(delete(FAILURES).where(*_pair({"username": username[:64],
                                                                   "client": client[:64]})))


def _pair(key: dict[str, str]) -> tuple:
    return FAILURES.c.username == key["username"], FAILURES.c.client == key["client"]


class RefreshTokens:
    """Issued refresh tokens: rotation on use, reuse detection, revocation."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: GatewaySettings) -> None:
        self.sessions, self.settings = sessions, settings

    async def issue(self, username: str, family: str | None = None) -> str:
        """Record a new refresh token (of a new family unless given); returns its jti."""
        jti, now = uuid.uuid4().hex, utcnow()
        async with self.sessions() as session, session.begin():
            session.add(RefreshToken(jti=jti, family=family or uuid.uuid4().hex, username=username[:64],
                                     issued_at=now, expires_at=now + dt.timedelta(seconds=self.settings.refresh_ttl_s),
                                     used_at=None, revoked_at=None))
        return jti

    async def trade(self, jti: str) -> str:
        """Use a refresh token once: its family (for the next one); Unauthorized if revoked, unknown or reused
        after the grace window (which revokes the family)."""
        now = utcnow()
        async with self.sessions() as session, session.begin():
            row = (await session.execute(select(REFRESH).where(REFRESH.c.jti == jti))).one_or_none()
            if row is None or row.revoked_at is not None:
                raise Unauthorized("refresh token revoked or unknown: log in again")
            first = await session.execute(update(REFRESH).where(REFRESH.c.jti == jti, REFRESH.c.used_at.is_(None))
                                          .values(used_at=now))
            if first.rowcount == 1:
                return row.family
            used_at = row.used_at or now
            if (now - used_at).total_seconds() <= self.settings.refresh_grace_s:
                return row.family  # the answer to the first trade was lost: a retry
            await session.execute(update(REFRESH).where(REFRESH.c.family == row.family,
                                                        REFRESH.c.revoked_at.is_(None)).values(revoked_at=now))
        raise Unauthorized("refresh token reused: every token of its session is revoked; log in again")

    async def revoke(self, jti: str) -> bool:
        """Revoke the family of a refresh token (logout); whether there was one."""
        async with self.sessions() as session, session.begin():
            family = (await session.execute(select(REFRESH.c.family).where(REFRESH.c.jti == jti))).scalar()
            if family is None:
                return False
            await session.execute(update(REFRESH).where(REFRESH.c.family == family,
                                                        REFRESH.c.revoked_at.is_(None)).values(revoked_at=utcnow()))
        return True

    async def revoke_user(self, username: str) -> int:
        """Revoke every refresh token of one account (its password was reset); how many were live."""
        async with self.sessions() as session, session.begin():
            result = await session.execute(update(REFRESH).where(REFRESH.c.username == username[:64],
                                                                 REFRESH.c.revoked_at.is_(None))
                                           .values(revoked_at=utcnow()))
        return result.rowcount or 0
