"""The token keys of a system on one machine: the gateway's private key and everyone's public keys.

`jiaozhi up` makes an Ed25519 key pair the first time it runs on a data dir and keeps it under
`<data dir>/keys/` (the private key readable by the launcher's user only), so tokens survive a restart.
Only the gateway's process gets the private key; the services get the public key set and nothing else
(`TokenKeys.env`). For a cluster, `jiaozhi token-keys` prints the same two values for the Secrets
(deploy/k8s/README.md).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from shared.auth import SigningKey, public_keyset

PRIVATE_VAR, PUBLIC_VAR = "JIAOZHI_JWT_PRIVATE_KEY", "JIAOZHI_JWT_PUBLIC_KEYS"


@dataclass
class TokenKeys:
    """The gateway's signing key and the public key set every component verifies with."""

    signing: SigningKey = field(default_factory=SigningKey.generate)
    retired: list[SigningKey] = field(default_factory=list)  # older keys still accepted (a rotation)

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> TokenKeys:
        """The data dir's key pair, made (and written, private part mode 0600) the first time."""
        folder = data_dir / "keys"
        private = folder / "gateway.jwk"
        if private.exists():
            return cls(SigningKey.from_jwk(private.read_text()))
        keys = cls()
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(keys.signing.private_jwk())
        return keys

    def public(self) -> str:
        """The JWK set of every accepted key (the signing one first)."""
        return public_keyset(self.signing, *self.retired)

    def env(self, component: str) -> dict[str, str]:
        """The variables a component gets: the gateway its private key too, a service the public set only."""
        env = {PUBLIC_VAR: self.public()}
        if component == "gateway":
            env[PRIVATE_VAR] = self.signing.private_jwk()
        return env
