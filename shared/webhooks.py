"""Webhooks to integrating platforms: the contract they receive, how it is signed, how secrets are kept.

A delivery is one CloudEvent 1.0 in structured mode (`Content-Type: application/cloudevents+json`), signed
as the Standard Webhooks specification says (so its libraries verify it too): headers `webhook-id`,
`webhook-timestamp` (Unix seconds) and `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`
under the subscription's secret `whsec_<base64 key>`. A receiver refuses a timestamp further than a few
minutes from its clock (replay) and de-duplicates on `webhook-id` (the CloudEvent id).

Secrets are stored encrypted with `cryptography`'s Fernet (AES-128-CBC and HMAC-SHA256, authenticated) under
a key derived from the setting `JIAOZHI_WEBHOOK_SECRET_KEY` (an environment variable or a secret file).
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
import time
from typing import Literal

from cryptography.fernet import Fernet, InvalidToken
from pydantic import BaseModel, ConfigDict, Field

from shared.events import Category

EventType = Literal["task_order.dispatched", "task_order.completed", "task_order.verified", "task_order.overdue"]
EVENT_TYPES: tuple[str, ...] = EventType.__args__  # type: ignore[attr-defined]
CE_TYPE = "jiaozhi.{event}.v1"  # the CloudEvent `type` of a delivery
CONTENT_TYPE = "application/cloudevents+json"
TOLERANCE_S = 300  # a receiver's default window against replay


class TaskOrderNotice(BaseModel):
    """What a platform hears about a task order on one of its own incidents (the `data` of a delivery)."""

    model_config = ConfigDict(frozen=True)
    event: EventType
    task_id: str
    incident_id: str
    external_id: str = Field(description="the platform's own id of the incident (as it reported it)")
    category: Category
    status: str = Field(description="the task order's status after the change")
    previous_status: str | None = None
    unit_id: str = Field(description="the unit the order is with")
    station_id: str | None = None
    at: dt.datetime
    deadline_at: dt.datetime | None = None
    milestone: str | None = Field(None, description="overdue only: the code of the milestone that passed (None: "
                                                    "the order itself)")


def new_secret() -> str:
    """A fresh signing secret, shown to the platform once."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _key_bytes(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"))


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value."""
    mac = hmac.new(_key_bytes(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signed_headers(secret: str, msg_id: str, body: bytes, *, now: float | None = None) -> dict[str, str]:
    """The headers of one delivery attempt (a new timestamp each attempt)."""
    timestamp = int(time.time() if now is None else now)
    return {"Content-Type": CONTENT_TYPE, "webhook-id": msg_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, msg_id, timestamp, body)}


def verify(secret: str, headers: dict[str, str], body: bytes, *, tolerance_s: int = TOLERANCE_S,
           now: float | None = None) -> bool:
    """What a receiver does: a fresh timestamp and one matching `v1` signature."""
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        msg_id, timestamp = lowered["webhook-id"], int(lowered["webhook-timestamp"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = sign(secret, msg_id, timestamp, body)
    return any(hmac.compare_digest(expected, given) for given in lowered.get("webhook-signature", "").split())


class SecretBox:
    """Encrypts subscription secrets at rest (Fernet) under a key derived from the configured one."""

    def __init__(self, configured_key: str) -> None:
        derived = hashlib.sha256(b"jiaozhi webhook secrets\0" + configured_key.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str:
        """The secret; ValueError when the key changed or the row was altered."""
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("cannot decrypt a webhook secret (wrong JIAOZHI_WEBHOOK_SECRET_KEY?)") from exc
