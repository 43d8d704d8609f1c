"""Who may log in: officers and platform clients stored with argon2 hashes, plus demo accounts in the demo."""
from __future__ import annotations

import asyncio
import secrets
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql import Select

from gateway.models import Account
from shared.auth import Identity
from shared.db import utcnow
from shared.errors import Conflict, Invalid, NotFound

_hasher = PasswordHasher()
# verified when the username is unknown, so a miss costs as long as a wrong password (no user enumeration)
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))

AccountKind = Literal["user", "client"]
UNIT_ROLES = ("station", "squadron")
MIN_SECRET_LENGTH = 8
#: demo accounts of their own (a unit's id logs in as that unit instead: grants.demo_unit)
DEMO_FIXED = ("admin", "command", "platform")


def hash_secret(secret: str) -> str:
    """An argon2id hash of a password or client secret."""
    return _hasher.hash(secret)


def verify_secret(secret_hash: str, secret: str) -> bool:
    """Whether the secret matches the hash (constant work either way)."""
    try:
        return _hasher.verify(secret_hash, secret)
    except (VerificationError, InvalidHashError):
        return False


def new_client_secret() -> str:
    """A random client secret, shown once when the client is created."""
    return secrets.token_urlsafe(32)


def new_password() -> str:
    """A random officer password (16 characters, URL-safe), shown once when it is set."""
    return secrets.token_urlsafe(12)


class AccountStore:
    """Accounts in the gateway's database."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def create(self, *, username: str, kind: AccountKind, role: str, secret: str, unit_id: str | None = None,
                     replace: bool = False) -> Account:
        """Add an account (or, with `replace`, overwrite its role, unit and secret)."""
        identity = _checked_identity(username, kind, role, unit_id)
        if len(secret) < MIN_SECRET_LENGTH:
            raise Invalid(f"secrets must be at least {MIN_SECRET_LENGTH} characters")
        secret_hash = await asyncio.to_thread(hash_secret, secret)
        async with self.sessions() as session, session.begin():
            account = await session.get(Account, username)
            if account is not None and not replace:
                raise Conflict(f"account {username} exists")
            account = account or Account(username=username, kind=kind, role=role, secret_hash=secret_hash,
                                        created_at=utcnow(), updated_at=utcnow())
            account.kind, account.role, account.unit_id = kind, identity.role, identity.unit_id
            account.secret_hash, account.disabled, account.updated_at = secret_hash, False, utcnow()
            session.add(account)
        return account

    async def ensure(self, *, username: str, kind: AccountKind, role: str, secret_hash: str) -> None:
        """Add an account with a ready hash unless it exists (demo seeding; never overwrites)."""
        async with self.sessions() as session, session.begin():
            if await session.get(Account, username) is None:
                now = utcnow()
                session.add(Account(username=username, kind=kind, role=role, secret_hash=secret_hash, created_at=now,
                                    updated_at=now))

    async def ensure_demo(self, secret_hash: str) -> None:
        """Add the demo's admin, command and platform accounts (the demo password's hash) unless they exist."""
        for name in DEMO_FIXED:
            await self.ensure(username=name, kind="client" if name == "platform" else "user", role=name,
                              secret_hash=secret_hash)

    async def set_disabled(self, username: str, disabled: bool = True) -> None:
        """Disable (or re-enable) an account; its tokens stop refreshing at once and expire within the TTL."""
        async with self.sessions() as session, session.begin():
            account = await session.get(Account, username)
            if account is None:
                raise NotFound(f"no account {username}")
            account.disabled, account.updated_at = disabled, utcnow()

    async def update(self, username: str, *, role: str | None = None, unit_id: str | None = None,
                     disabled: bool | None = None) -> Account:
        """Change an account's role and unit (checked as on creation) or disable/enable it; never its secret."""
        async with self.sessions() as session, session.begin():
            account = await session.get(Account, username)
            if account is None:
                raise NotFound(f"no account {username}")
            if role is not None or unit_id is not None:
                new_role = role or account.role
                new_unit = unit_id if unit_id is not None else account.unit_id
                identity = _checked_identity(username, account.kind, new_role, new_unit)  # type: ignore[arg-type]
                account.role, account.unit_id = identity.role, identity.unit_id
            if disabled is not None:
                account.disabled = disabled
            account.updated_at = utcnow()
        return account

    async def reset_secret(self, username: str, secret: str) -> Account:
        """Give an account a new password or client secret (the old one stops working at once)."""
        if len(secret) < MIN_SECRET_LENGTH:
            raise Invalid(f"secrets must be at least {MIN_SECRET_LENGTH} characters")
        secret_hash = await asyncio.to_thread(hash_secret, secret)
        async with self.sessions() as session, session.begin():
            account = await session.get(Account, username)
            if account is None:
                raise NotFound(f"no account {username}")
            account.secret_hash, account.updated_at = secret_hash, utcnow()
        return account

    async def get(self, username: str) -> Account | None:
        """An account by name."""
        async with self.sessions() as session:
            return await session.get(Account, username)

    async def all(self) -> list[Account]:
        """Every account, by name."""
        async with self.sessions() as session:
            return list((await session.execute(select(Account).order_by(Account.username))).scalars())

    @staticmethod
    def query(*, kind: str | None = None, role: str | None = None, unit_id: str | None = None) -> Select:
        """Accounts matching the filters (for a paged list)."""
        query = select(Account)
        for column, value in ((Account.kind, kind), (Account.role, role), (Account.unit_id, unit_id)):
            if value is not None:
                query = query.where(column == value)
        return query

    async def authenticate(self, username: str, secret: str, *, kind: AccountKind | None = None) -> Account | None:
        """The active account (of this kind, if given) whose secret matches, else None."""
        account = await self.get(username)
        matches = await asyncio.to_thread(verify_secret, account.secret_hash if account else _DUMMY_HASH, secret)
        if account is None or not matches or account.disabled or (kind is not None and account.kind != kind):
            return None
        return account


def identity_of_account(account: Account) -> Identity:
    """The identity tokens carry for an account."""
    return Identity(username=account.username, role=account.role, unit_id=account.unit_id)  # type: ignore[arg-type]


def _checked_identity(username: str, kind: AccountKind, role: str, unit_id: str | None) -> Identity:
    if kind not in ("user", "client"):
        raise Invalid("kind must be user or client")
    if kind == "client" and role != "platform":
        raise Invalid("platform clients have the platform role")
    if role in UNIT_ROLES and not unit_id:
        raise Invalid(f"a {role} account needs the unit it belongs to")
    if role not in UNIT_ROLES:
        unit_id = None
    if not username or len(username) > 64:
        raise Invalid("username must be 1-64 characters")
    try:
        return Identity(username=username, role=role, unit_id=unit_id)  # type: ignore[arg-type]
    except ValueError as exc:
        raise Invalid(f"role must be one of admin, command, squadron, station, platform ({exc})") from exc
