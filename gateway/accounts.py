"""Who may log in: demo accounts (admin, command, platform, one per station) with argon2 hashes."""
from __future__ import annotations

from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError

from shared.auth import Identity

_hasher = PasswordHasher()


@dataclass(frozen=True)
class Account:
    identity: Identity
    password_hash: str


class Accounts:
    """Fixed accounts plus unit accounts (a station's or squadron's id as username, demo only)."""

    def __init__(self, demo_password: str) -> None:
        self._demo_hash = _hasher.hash(demo_password)
        self.fixed = {
            name: Account(Identity(username=name, role=name), self._demo_hash)  # type: ignore[arg-type]
            for name in ("admin", "command", "platform")
        }

    def check_fixed(self, username: str, password: str) -> Identity | None:
        """The identity of a fixed account if the password matches."""
        account = self.fixed.get(username)
        if account is None or not _verify(account.password_hash, password):
            return None
        return account.identity

    def check_unit(self, unit_id: str, kind: str, password: str) -> Identity | None:
        """A unit account (station or squadron) with the demo password."""
        role = {"station": "station", "squadron": "squadron"}.get(kind)
        if role is None or not _verify(self._demo_hash, password):
            return None
        return Identity(username=unit_id, role=role, unit_id=unit_id)  # type: ignore[arg-type]


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except VerificationError:
        return False
