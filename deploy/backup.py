"""`jiaozhi backup DIR` and `jiaozhi restore DIR`: every database the system owns, as of one moment.

What is copied: each component's whole database — the four services' and the gateway's (accounts,
audit and any table later added there) — by SQLite's online backup API per file, or by `pg_dump` of
the components' schemas (one `pg_dump` per PostgreSQL database, so one snapshot for all the schemas
in it). SQLite files are taken at one moment too: the backup holds every file's write lock at once
(milliseconds), opens a read snapshot on each, lets go, and copies from the snapshots.

What is not copied: the JetStream store. A restore starts an empty one instead and marks every
outbox row it restored as unsent, so each relay re-publishes its events; consumers skip those their
inbox already holds (the inbox outlasts the outbox's sent rows, shared/settings.py). Events that
were in flight at the backup are therefore delivered after the restore, and none is applied twice.
Why not copy the store: docs/OPERATIONS.md.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import shutil
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from deploy import backup_pg
from deploy.components import COMPONENTS, SERVICES, service_settings

FORMAT = 1
MANIFEST = "manifest.json"


class BackupError(RuntimeError):
    """A backup or restore that cannot go ahead; the message says why and what to do."""


@dataclass(frozen=True)
class Store:
    """Where one component keeps its data, as its settings say (the environment the system runs with)."""

    component: str
    url: str

    @property
    def sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    @property
    def path(self) -> Path:
        database = make_url(self.url).database
        if not database or database == ":memory:":
            raise BackupError(f"{self.component}: an in-memory database cannot be backed up")
        return Path(database)


def component_settings(name: str) -> Any:
    """A component's settings, read from the environment as the component itself would."""
    if name == "gateway":
        from gateway.config import GatewaySettings

        return GatewaySettings()
    return service_settings(name)


def stores() -> list[Store]:
    """Every component's database, from the environment."""
    return [Store(name, component_settings(name).database()) for name in COMPONENTS]


def jetstream_dir() -> Path:
    """The embedded nats-server's store (deploy/natsd.py) under the data directory."""
    return component_settings("gateway").data_dir / "nats"


def backup(dest: Path) -> dict[str, Any]:
    """Back up every component's database into `dest` (a new or empty folder); return the manifest."""
    if dest.exists() and any(dest.iterdir()):
        raise BackupError(f"{dest} is not empty; back up into a new folder")
    dest.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    timings: dict[str, float] = {}
    all_stores = stores()
    files = [s for s in all_stores if s.sqlite]
    databases = backup_pg.by_database([s for s in all_stores if not s.sqlite])
    if files and databases:
        raise BackupError("some components on SQLite and some on PostgreSQL: not one moment; not supported")
    components: dict[str, dict[str, Any]] = {}
    with _snapshots(files, timings) as readers:
        for i, (dsn, schemas) in enumerate(databases.items()):
            t = time.monotonic()
            name = f"postgres-{i + 1}.dump"
            backup_pg.dump(dsn, schemas, dest / name)
            timings[f"pg_dump {', '.join(schemas)}"] = round(time.monotonic() - t, 3)
            for schema in schemas:
                components[schema] = {"backend": "postgresql", "file": name, "schema": schema}
        for store in files:
            t = time.monotonic()
            target = dest / f"{store.component}.db"
            reader = readers.get(store.component)
            if reader is None:
                components[store.component] = {"backend": "sqlite", "file": None}
                continue
            copy = sqlite3.connect(target)
            try:
                reader.backup(copy)
            finally:
                copy.close()
            timings[f"copy {store.component}.db"] = round(time.monotonic() - t, 3)
            components[store.component] = {"backend": "sqlite", "file": target.name, "bytes": target.stat().st_size}
    timings["total"] = round(time.monotonic() - started, 3)
    manifest = {"format": FORMAT, "created_at": dt.datetime.now(dt.UTC).isoformat(), "components": components,
                "jetstream": "not copied: a restore starts an empty store and re-sends every outbox row it restores",
                "timings_s": timings}
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


@contextlib.contextmanager
def _snapshots(files: list[Store], timings: dict[str, float]) -> Iterator[dict[str, sqlite3.Connection]]:
    """A read snapshot of every SQLite file as of one moment: every file's write lock held at once while
    the snapshots open (services' writes wait meanwhile, within their 10 s busy timeout)."""
    locks: list[sqlite3.Connection] = []
    readers: dict[str, sqlite3.Connection] = {}
    try:
        t = time.monotonic()
        for store in files:
            if not store.path.exists():
                continue
            lock = sqlite3.connect(store.path, timeout=30, isolation_level=None)
            locks.append(lock)
            lock.execute("BEGIN IMMEDIATE")
        for store in files:
            if store.path.exists():
                reader = sqlite3.connect(store.path, timeout=30, isolation_level=None)
                readers[store.component] = reader
                reader.execute("BEGIN")
                reader.execute("SELECT count(*) FROM sqlite_master").fetchall()  # the snapshot starts here
        for lock in locks:
            lock.execute("ROLLBACK")
        if files:
            timings["writes held (SQLite)"] = round(time.monotonic() - t, 3)
        yield readers
    finally:
        for conn in [*locks, *readers.values()]:
            conn.close()


def restore(src: Path, *, replace: bool = False) -> dict[str, float]:
    """Restore a backup into the databases the environment names (fresh ones, unless `replace`) and an
    empty JetStream store; return how long each step took. Checks everything before changing anything."""
    manifest_file = src / MANIFEST
    if not manifest_file.exists():
        raise BackupError(f"{src} holds no {MANIFEST}: not a jiaozhi backup")
    manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT:
        raise BackupError(f"backup format {manifest.get('format')} is not {FORMAT}")
    targets = {s.component: s for s in stores()}
    entries: dict[str, dict[str, Any]] = manifest["components"]
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    for name, entry in entries.items():  # check first: a refused restore changes nothing
        target = targets[name]
        if target.sqlite != (entry["backend"] == "sqlite"):
            raise BackupError(f"{name} was backed up from {entry['backend']} but is configured for {target.url}")
        if target.sqlite and not replace and _sqlite_files(target.path):
            raise BackupError(f"{target.path} exists; restore into a fresh data directory or pass --replace")
        if not target.sqlite and not replace and backup_pg.schema_has_tables(target.url, name):
            raise BackupError(f"schema {name} in {backup_pg.dsn_of(target.url)[0]} has tables; restore into a "
                              "fresh database or pass --replace")
    store = jetstream_dir()
    if store.exists() and any(store.iterdir()) and not replace:
        raise BackupError(f"{store} holds a JetStream store; restore into a fresh data directory or pass --replace "
                          "(events still in it would be applied on top of the restored databases)")
    timings: dict[str, float] = {}
    if store.exists():
        store.rename(store.with_name(f"nats.before-restore-{stamp}"))
    for name, entry in entries.items():
        target, t = targets[name], time.monotonic()
        if entry["backend"] == "sqlite":
            if entry["file"] is None:
                continue
            for old in _sqlite_files(target.path):
                old.rename(old.with_name(f"{old.name}.before-restore-{stamp}"))
            target.path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / entry["file"], target.path)
            resent = _resend_sqlite(target.path) if name in SERVICES else 0
        else:
            backup_pg.restore_schema(src / entry["file"], name, target.url, replace=replace)
            resent = backup_pg.resend(target.url, name) if name in SERVICES else 0
        timings[f"restore {name} ({resent} outbox rows to re-send)"] = round(time.monotonic() - t, 3)
    timings["total"] = round(sum(timings.values()), 3)
    return timings


def _sqlite_files(path: Path) -> list[Path]:
    return [p for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")) if p.exists()]


def _resend_sqlite(path: Path) -> int:
    """Mark every outbox row unsent, so the relay publishes it again into the new JetStream store."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='outbox'").fetchone():
            return 0
        return conn.execute("UPDATE outbox SET sent_at = NULL WHERE sent_at IS NOT NULL").rowcount
    finally:
        conn.close()
