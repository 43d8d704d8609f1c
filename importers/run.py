"""The common importer run: log in, send registries then incidents in batches, print and return the summary."""
from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from importers.client import Tally, login, post_batches, reject_all

REGISTRY_PATHS = {"villages": "/api/v1/villages:batch", "enterprises": "/api/v1/enterprises:batch"}


def run_import(name: str, incidents: list[tuple[str, dict[str, Any]]], rejected: list[str],
               registries: dict[str, list[dict[str, Any]]], argv: list[str], *,
               console: Console | None = None) -> dict[str, Any]:
    """Send everything; every record ends up created, existing or rejected with a reason."""
    parser = argparse.ArgumentParser(prog=f"importer {name}")
    parser.add_argument("--base-url", default=os.environ.get("JIAOZHI_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--username", default="admin")
    parser.add_argument("--password", default=os.environ.get("JIAOZHI_DEMO_PASSWORD", "demo"))
    parser.add_argument("--ids-out", default=None, help="write external_id → incident id as JSON here")
    args = parser.parse_args(argv)
    console = console or Console(stderr=True)
    token = login(args.base_url, args.username, args.password)
    summary: dict[str, Any] = {"data_set": name}
    with httpx.Client(base_url=args.base_url, headers={"authorization": f"Bearer {token}"}, timeout=300) as client:
        for registry, records in registries.items():
            tally = Tally()
            post_batches(client, REGISTRY_PATHS[registry], [(r["id"], r) for r in records], tally,
                         console=console, label=f"{name} {registry}")
            summary[registry] = tally.as_dict()
        tally = Tally()
        reject_all(tally, (f"mapping: {reason}" for reason in rejected))
        post_batches(client, "/api/v1/incidents:batch", incidents, tally, console=console, label=f"{name} incidents")
        summary["incidents"] = tally.as_dict()
    if args.ids_out:
        with open(args.ids_out, "w", encoding="utf-8") as f:
            json.dump(tally.ids, f)
    table = Table(title=f"{name} import")
    for column in ("records", "total", "created", "existing", "rejected"):
        table.add_column(column)
    for key, value in summary.items():
        if isinstance(value, dict):
            table.add_row(key, *(str(value[c]) for c in ("total", "created", "existing", "rejected")))
    console.print(table)
    for key, value in summary.items():
        if isinstance(value, dict):
            for reason, count in value["rejected_by_reason"].items():
                console.print(f"  {key} rejected: {count} × {reason}")
    summary["ids"] = tally.ids
    return summary


def cli(name: str, description: str | None, read: Callable[[Path], tuple[Any, Any, dict[str, Any]]],
        argv: list[str] | None = None) -> dict[str, Any]:
    """An importer's command: read DATA_DIR (the rest of the arguments are `run_import`'s), send, summarise."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("data_dir", type=Path)
    args, rest = parser.parse_known_args(argv)
    items, rejected, villages = read(args.data_dir)
    return run_import(name, items, rejected, {"villages": list(villages.values())}, rest)
