"""NATS least privilege, derived from the code: each service's user, what it may publish and subscribe to.

A service may publish only
- its own events, `<service>.>` (the outbox relay; `shared.events`: a subject starts with its owner),
- the JetStream API calls for its own stream (info, create) and for ordered consumers on it (dispatch's task
  feed follows its own stream this way: ephemeral consumer, flow control),
- for each durable consumer it owns, `<service>-on-<owner>` (its `handlers.subscriptions`): the stream's info
  and creation (a consumer that starts before the owner creates the owner's stream with the same config, so
  the start order does not matter; an existing stream is never changed by a create), that consumer's
  create/info/next-message calls and acks, and nothing of any other consumer,
and may subscribe only to its own inbox prefix `_INBOX_<service>` (`Settings.nats_options`), where JetStream
delivers the messages it fetches and the API answers. Anonymous clients are refused (no `no_auth_user`).
"""
from __future__ import annotations

import importlib
import secrets
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from deploy.components import SERVICES, service_settings
from shared.bus import Subscription
from shared.events import stream_name

API = "$JS.API"


def subscriptions(service: str) -> list[Subscription]:
    """The durable consumers a service runs, read from its handlers (no broker, no database needed)."""
    handlers = importlib.import_module(f"services.{service}.handlers")
    runtime = SimpleNamespace(settings=service_settings(service), state={}, outbox=None)
    return handlers.subscriptions(runtime)


def inbox_prefix(service: str) -> str:
    """Where replies and fetched messages reach this service (must match `Settings.nats_options`)."""
    return f"_INBOX_{service}"


def permissions(service: str) -> dict[str, Any]:
    """nats-server `permissions` for one service's user."""
    own = stream_name(service)
    publish = [
        f"{service}.>",
        f"{API}.STREAM.INFO.{own}", f"{API}.STREAM.CREATE.{own}", f"{API}.STREAM.UPDATE.{own}",
        f"{API}.STREAM.MSG.GET.{own}",  # dispatch's task stream resumed with Last-Event-ID (read back its own)
        f"{API}.CONSUMER.CREATE.{own}", f"$JS.FC.{own}.>",
    ]
    for sub in subscriptions(service):
        stream, durable = stream_name(sub.owner), sub.durable
        publish += [
            f"{API}.STREAM.INFO.{stream}", f"{API}.STREAM.CREATE.{stream}",
            f"{API}.CONSUMER.CREATE.{stream}.{durable}", f"{API}.CONSUMER.CREATE.{stream}.{durable}.>",
            f"{API}.CONSUMER.INFO.{stream}.{durable}", f"{API}.CONSUMER.MSG.NEXT.{stream}.{durable}",
            f"$JS.ACK.{stream}.{durable}.>",
        ]
    return {"publish": {"allow": sorted(set(publish))}, "subscribe": {"allow": [f"{inbox_prefix(service)}.>"]}}


def generate_passwords(names: tuple[str, ...] = SERVICES) -> dict[str, str]:
    """A fresh random password per user (the embedded launcher makes new ones at every start)."""
    return {name: secrets.token_urlsafe(24) for name in names}


@dataclass
class NatsUsers:
    """The embedded broker's users: one per service with its derived permissions, and any extra user
    (a bench's observer) with the permissions it is given. New passwords for every `NatsUsers()`."""

    passwords: dict[str, str] = field(default_factory=generate_passwords)
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, name: str, perms: dict[str, Any]) -> str:
        """Add a user that is not a service; returns its password."""
        self.extra[name] = perms
        self.passwords[name] = secrets.token_urlsafe(24)
        return self.passwords[name]

    def env(self, component: str) -> dict[str, str]:
        """The variables that give a component its credentials (none for the gateway: no bus)."""
        if component not in SERVICES:
            return {}
        return {"JIAOZHI_NATS_USER": component, "JIAOZHI_NATS_PASSWORD": self.passwords[component]}

    def config(self) -> str:
        """The server's `authorization` section."""
        return authorization_block(self.passwords, extra=self.extra)


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def authorization_block(passwords: dict[str, str], *, extra: dict[str, dict[str, Any]] | None = None) -> str:
    """The nats-server `authorization` section: one user per service (plus `extra` users with their
    permissions, e.g. a test's or a bench's observer); anyone else is refused."""
    lines = ["authorization {", "  users: ["]
    for name, password in passwords.items():
        perms = (extra or {}).get(name) or permissions(name)
        lines.append(f"    {{user: {_quoted(name)}, password: {_quoted(password)}, permissions: {{")
        for direction in ("publish", "subscribe"):
            allow = ", ".join(_quoted(s) for s in perms[direction]["allow"])
            lines.append(f"      {direction}: {{allow: [{allow}]}}")
        lines.append("    }}")
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


def helm_users() -> dict[str, Any]:
    """`config.merge.authorization` for the NATS Helm chart: passwords are `<< $VAR >>` references to the
    container's environment, which nats-values.yaml fills from the Secrets `jiaozhi-nats-<service>`."""
    return {"users": [{"user": s, "password": f"<< ${s.upper()}_PASSWORD >>", "permissions": permissions(s)}
                      for s in SERVICES]}
