"""`jiaozhi backup DIR` and `jiaozhi restore DIR` (the work is in deploy/backup.py)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console(stderr=True)


def _show(title: str, timings: dict[str, float]) -> None:
    table = Table(title=title)
    table.add_column("step")
    table.add_column("seconds", justify="right")
    for step, seconds in timings.items():
        table.add_row(step, f"{seconds:.3f}")
    console.print(table)


def backup(directory: Annotated[Path, typer.Argument(help="a new (or empty) folder for the backup")]) -> None:
    """Back up every database the system owns (the four services', the gateway's) as of one moment, while it
    runs. Databases come from the same environment the system runs with (JIAOZHI_DATA_DIR, JIAOZHI_DATABASE_URL,
    JIAOZHI_<SERVICE>_DATABASE_URL). The JetStream store is not copied: see `restore`."""
    from deploy.backup import BackupError
    from deploy.backup import backup as run

    try:
        manifest = run(directory)
    except (BackupError, FileNotFoundError, RuntimeError) as exc:
        console.print(f"[red]backup failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    _show(f"backed up to {directory}", manifest["timings_s"])


def restore(
    directory: Annotated[Path, typer.Argument(help="a folder written by `jiaozhi backup`")],
    replace: Annotated[bool, typer.Option(help="move aside (SQLite, JetStream store) or drop (PostgreSQL schemas) "
                                               "what the targets hold; default: refuse unless they are fresh")] = False,
) -> None:
    """Restore a backup into the databases the environment names, with the system stopped. The JetStream store
    starts empty and every restored outbox row is re-sent when the system starts; consumers skip what they had
    handled. With an external NATS server, delete the system's streams before starting (docs/OPERATIONS.md)."""
    from deploy.backup import BackupError
    from deploy.backup import restore as run

    try:
        timings = run(directory, replace=replace)
    except (BackupError, FileNotFoundError, RuntimeError) as exc:
        console.print(f"[red]restore failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    _show(f"restored from {directory}; start the system to re-send the outboxes", timings)
