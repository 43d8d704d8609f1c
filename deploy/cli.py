"""The `jiaozhi` command: run the system, migrate databases, load the demo district or onboard your own."""
from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from deploy import cli_backup, cli_onboard
from deploy.cli_accounts import accounts
from deploy.components import COMPONENTS, SERVICES, app_factory, migrations_dir, service_settings
from deploy.launcher import run_system
from deploy.supervisor import System

cli = typer.Typer(help="jiaozhi: traffic–security integrated policing platform.", no_args_is_help=True)
cli.add_typer(accounts, name="accounts")
cli.command()(cli_backup.backup)  # backup and restore (issue 18)
cli.command()(cli_backup.restore)
cli.command()(cli_onboard.onboard)  # a district of one's own (issue 22)
console = Console(stderr=True)


@cli.command()
def up(
    target: Annotated[str, typer.Option(help=f"all, or one of: {', '.join(COMPONENTS)}")] = "all",
    data_dir: Annotated[Path, typer.Option(envvar="JIAOZHI_DATA_DIR", help="SQLite files, NATS store, logs")] = Path(
        "var"),
    demo: Annotated[bool, typer.Option(help="load the demo district once the system is up")] = True,
    nats_port: Annotated[int, typer.Option(envvar="JIAOZHI_EMBEDDED_NATS_PORT", help="embedded nats-server")] = 4233,
    base_port: Annotated[
        int, typer.Option(envvar="JIAOZHI_BASE_PORT", help="gateway port; services take the next four")
    ] = 8000,
    tracing: Annotated[bool, typer.Option(
        envvar="JIAOZHI_TRACING", help="OpenTelemetry spans, so each log line carries its trace_id")] = True,
    access_log: Annotated[bool, typer.Option(
        envvar="JIAOZHI_ACCESS_LOG", help="one JSON log line per HTTP request in every component")] = True,
) -> None:
    """Start the whole system (default) or one component (what a Kubernetes pod runs).

    Ctrl-C or SIGTERM stops every component within 10 s; the exit code is then 130 (Ctrl-C) or 143 (SIGTERM).
    """
    if target != "all":
        _run_one(target)
        return
    # an operator follows one incident through the logs by its trace_id (docs/OBSERVABILITY.md): on by default here
    observe = {"JIAOZHI_TRACING": str(tracing).lower(), "JIAOZHI_ACCESS_LOG": str(access_log).lower()}
    code = run_system(System.on_ports(data_dir, base_port, nats_port, env=observe), demo=demo, console=console)
    # Everything is stopped: skip the interpreter's teardown (measured 1–2.5 s after a demo load, freeing
    # the district and the numeric libraries), so Ctrl-C is answered at once.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _run_one(target: str) -> None:
    """Run one component in this process under uvicorn."""
    import uvicorn

    from shared.settings import DEFAULT_PORTS, HTTP_DRAIN_S, KEEP_ALIVE_S

    if target == "gateway":  # uvloop, httptools and JIAOZHI_GATEWAY_WORKERS processes (gateway/__main__.py)
        from gateway.__main__ import main

        main()
        return
    factory = app_factory(target)
    port = int(os.environ.get("JIAOZHI_PORT") or DEFAULT_PORTS[target])
    host = os.environ.get("JIAOZHI_HOST", "127.0.0.1")
    uvicorn.run(factory, factory=True, host=host, port=port, log_config=None, access_log=False,
                timeout_graceful_shutdown=HTTP_DRAIN_S, timeout_keep_alive=KEEP_ALIVE_S)


@cli.command()
def migrate(target: Annotated[str, typer.Option(help="all, or one service")] = "all") -> None:
    """Apply each service's schema migrations (what start-up does; for operators before a rollout)."""
    from shared.db import ensure_schema, make_engine
    from shared.migrations import current_revision, upgrade

    names = SERVICES if target == "all" else (target,)

    async def run() -> None:
        for name in names:
            settings = service_settings(name)
            engine = make_engine(settings.database(), schema=name)
            try:
                await ensure_schema(engine, name)
                await upgrade(engine, migrations_dir(name), schema=name)
                console.print(f"{name}: at revision {await current_revision(engine)}")
            finally:
                await engine.dispose()

    asyncio.run(run())


@cli.command(hidden=True)
def makemigration(service: str, message: str) -> None:
    """(developers) Autogenerate a service's next migration from its models."""
    from alembic import command

    from shared.db import make_engine
    from shared.migrations import alembic_config, upgrade

    async def run() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            engine = make_engine(f"sqlite+aiosqlite:///{tmp}/scratch.db")
            await upgrade(engine, migrations_dir(service), schema=service)
            async with engine.begin() as conn:
                await conn.run_sync(lambda c: command.revision(
                    alembic_config(migrations_dir(service), c), message=message, autogenerate=True))
            await engine.dispose()

    asyncio.run(run())


@cli.command("openapi")
def openapi_document(write: Annotated[bool, typer.Option(help="write docs/openapi.json")] = False) -> None:
    """Print the merged public OpenAPI document as the gateway serves it (or write docs/openapi.json)."""
    from deploy.openapi_doc import COMMITTED, merged_document, render

    with tempfile.TemporaryDirectory() as tmp:
        text = render(merged_document(Path(tmp)))
    if write:
        COMMITTED.write_text(text, encoding="utf-8")
    else:
        print(text, end="")


@cli.command("nats-permissions")
def nats_permissions() -> None:
    """Print the NATS users and permissions derived from the code (deploy/k8s/nats-values.yaml holds them)."""
    import yaml

    from deploy.nats_auth import helm_users

    print(yaml.safe_dump({"authorization": helm_users()}, sort_keys=False, width=200), end="")


@cli.command("token-keys")
def token_keys(out: Annotated[Path, typer.Option(help="folder to write the two Secret files into")],
               kid: Annotated[str | None, typer.Option(help="key id (default: date and random suffix)")] = None,
               keep: Annotated[Path | None, typer.Option(help="a JIAOZHI_JWT_PUBLIC_KEYS file whose keys stay "
                                                                "accepted (a rotation)")] = None) -> None:
    """Make a new gateway signing key: OUT/JIAOZHI_JWT_PRIVATE_KEY (the gateway's Secret only) and
    OUT/JIAOZHI_JWT_PUBLIC_KEYS (every component's), see deploy/k8s/README.md."""
    import json

    from shared.auth import SigningKey, public_keyset

    key = SigningKey.generate(kid)
    kept = json.loads(keep.read_text())["keys"] if keep else []
    out.mkdir(parents=True, exist_ok=True)
    private = out / "JIAOZHI_JWT_PRIVATE_KEY"
    private.touch(mode=0o600)
    private.write_text(key.private_jwk())
    (out / "JIAOZHI_JWT_PUBLIC_KEYS").write_text(public_keyset(key, *[k for k in kept if k.get("kid") != key.kid]))
    print(f"key {key.kid}: {private} (gateway only), {out / 'JIAOZHI_JWT_PUBLIC_KEYS'} (everyone)")


@cli.command()
def demo(
    gateway: Annotated[str, typer.Option(help="gateway base URL")] = "http://127.0.0.1:8000",
    seed: Annotated[int, typer.Option(help="regenerate the district's records from this seed")] = 2021,
    recent_days: Annotated[int, typer.Option(help="days of detail records posted through the API")] = 30,
) -> None:
    """Generate the calibrated demo district and load it into a running system (idempotent per seed and day)."""
    from deploy.demo import load_demo

    load_demo(gateway, console=console, seed=seed, recent_days=recent_days)


@cli.command("classify-forces")
def classify_forces(
    year: Annotated[int | None, typer.Option(help="one year (2010–2016); default: every year")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="folder with the UK police forces CSV files")] = None,
) -> None:
    """Classify the 39 English police forces per year (real data) and show year-to-year stability."""
    from services.classification.uk_forces import main

    main(year=year, data_dir=data_dir, console=console)


if __name__ == "__main__":
    cli()
