"""Personal identifiers: keyed hashes for matching, masks for display; the raw value is never kept."""
from __future__ import annotations

import hashlib
import hmac


def hash_identity(key: str, id_number: str) -> str:
    """A keyed hash of an identity number (HMAC-SHA256, hex): equal numbers match, nothing reverses it."""
    normalised = id_number.strip().upper()
    return hmac.new(key.encode(), normalised.encode(), hashlib.sha256).hexdigest()


def mask_identity(id_number: str) -> str:
    """The number with all but its first 3 and last 2 characters masked."""
    value = id_number.strip()
    if len(value) <= 5:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 5) + value[-2:]
