"""`jiaozhi accounts …`: create officers and platform clients in the gateway's database, list, disable them, reset
a password — for the first admin, before anyone can log in. Afterwards the same is done over the API
(`/api/v1/accounts`, gateway/account_api.py); both go through `gateway.accounts.AccountStore`."""
from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

accounts = typer.Typer(help="Officers and platform clients who may log in at the gateway.", no_args_is_help=True)
console = Console(stderr=True)
ROLES = ("admin", "command", "squadron", "station", "platform")


def _with_store(work: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run `work(store)` against the gateway's database (migrated first), from JIAOZHI_* settings."""
    from gateway.accounts import AccountStore
    from gateway.app import MIGRATIONS
    from gateway.config import GatewaySettings
    from shared.db import ensure_schema, make_engine, make_sessions
    from shared.errors import DomainError
    from shared.migrations import upgrade

    async def run() -> Any:
        settings = GatewaySettings()
        engine = make_engine(settings.database(), schema="gateway")
        try:
            await ensure_schema(engine, "gateway")
            await upgrade(engine, MIGRATIONS, schema="gateway")
            return await work(AccountStore(make_sessions(engine)))
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except DomainError as exc:
        console.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(1) from exc


def _secret(password: str | None, prompt: str) -> str:
    if password is not None:
        return password
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    return typer.prompt(prompt, hide_input=True, confirmation_prompt=True)


@accounts.command("add-user")
def add_user(
    username: str,
    role: Annotated[str, typer.Option(help=f"one of {', '.join(ROLES[:-1])}")],
    unit: Annotated[str | None, typer.Option(help="the station or squadron id (station and squadron roles)")] = None,
    password: Annotated[str | None, typer.Option(help="omit to be prompted (or pipe it on stdin)")] = None,
    replace: Annotated[bool, typer.Option(help="overwrite an existing account's role, unit and password")] = False,
) -> None:
    """Create an officer who logs in with a password (grant_type=password)."""
    secret = _secret(password, "password")
    _with_store(lambda store: store.create(username=username, kind="user", role=role, unit_id=unit, secret=secret,
                                           replace=replace))
    console.print(f"user {username} ({role}{', ' + unit if unit else ''}) saved")


@accounts.command("add-client")
def add_client(
    client_id: str,
    secret: Annotated[str | None, typer.Option(help="omit to generate one (printed once on stdout)")] = None,
    replace: Annotated[bool, typer.Option(help="issue a new secret for an existing client")] = False,
) -> None:
    """Create an integrating platform (grant_type=client_credentials, role platform)."""
    from gateway.accounts import new_client_secret

    generated = secret is None
    value = secret or new_client_secret()
    _with_store(lambda store: store.create(username=client_id, kind="client", role="platform", secret=value,
                                           replace=replace))
    console.print(f"client {client_id} saved")
    if generated:
        print(value)  # stdout, alone, so a script can capture it


@accounts.command("disable")
def disable(username: str, enable: Annotated[bool, typer.Option(help="re-enable instead")] = False) -> None:
    """Stop an account logging in or refreshing (issued access tokens run out within their TTL)."""
    _with_store(lambda store: store.set_disabled(username, not enable))
    console.print(f"{username} {'enabled' if enable else 'disabled'}")


@accounts.command("reset-password")
def reset_password(
    username: str,
    password: Annotated[str | None, typer.Option(help="omit to generate one (printed once on stdout)")] = None,
) -> None:
    """Give an account a new password or client secret (the old one stops working at once)."""
    from gateway.accounts import new_password

    value = password or new_password()
    _with_store(lambda store: store.reset_secret(username, value))
    console.print(f"{username}: new secret saved")
    if password is None:
        print(value)


@accounts.command("list")
def list_accounts() -> None:
    """Every account (never a secret)."""
    rows = _with_store(lambda store: store.all())
    table = Table(title="accounts")
    for column in ("username", "kind", "role", "unit", "disabled", "updated"):
        table.add_column(column)
    for a in rows:
        table.add_row(a.username, a.kind, a.role, a.unit_id or "", "yes" if a.disabled else "",
                      a.updated_at.isoformat(timespec="seconds"))
    Console().print(table)
