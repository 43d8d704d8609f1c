"""The PostgreSQL side of backup and restore: `pg_dump` per database, `pg_restore` per schema."""
from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url


def dsn_of(url: str) -> tuple[str, str, dict[str, str]]:
    """(database name, libpq URL without the password, environment carrying the password) of a SQLAlchemy URL."""
    parsed = make_url(url).set(drivername="postgresql")
    env = {"PGPASSWORD": parsed.password} if parsed.password else {}
    return parsed.database or "", parsed.set(password=None).render_as_string(hide_password=False), env


def by_database(stores: list[Any]) -> dict[str, list[str]]:
    """Components' schemas grouped by the database (libpq URL) they live in."""
    grouped: dict[str, list[str]] = {}
    for store in stores:
        grouped.setdefault(store.url, []).append(store.component)
    return grouped


def _tool(name: str) -> str:
    found = shutil.which(name, path=os.environ.get("JIAOZHI_PG_BIN") or None) or shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} not found: install the PostgreSQL client (same major version as the server)"
                                " or set JIAOZHI_PG_BIN to its folder")
    return found


def _run(args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(args, env=os.environ | env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{Path(args[0]).name} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")


def dump(url: str, schemas: list[str], target: Path) -> None:
    """`pg_dump` the schemas in one run (one snapshot for all of them), custom format."""
    _, dsn, env = dsn_of(url)
    _run([_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges", f"--file={target}",
          *(f"--schema={s}" for s in schemas), f"--dbname={dsn}"], env)


async def _execute(url: str, sql: str, *args: Any) -> Any:
    _, dsn, env = dsn_of(url)
    conn = await asyncpg.connect(dsn, password=env.get("PGPASSWORD"))
    try:
        if sql.lstrip().upper().startswith("SELECT"):
            return await conn.fetchval(sql, *args)
        return await conn.execute(sql, *args)
    finally:
        await conn.close()


def schema_has_tables(url: str, schema: str) -> bool:
    """Whether the schema exists with at least one table in it."""
    found = asyncio.run(_execute(url, "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1",
                                 schema))
    return bool(found)


def restore_schema(dump_file: Path, schema: str, url: str, *, replace: bool) -> None:
    """Restore one schema of a dump into the database at `url` (dropping what is there if `replace`)."""
    if replace:
        asyncio.run(_execute(url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    asyncio.run(_execute(url, f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    _, dsn, env = dsn_of(url)
    # --schema restores the schema's objects but not the schema itself, made just above
    _run([_tool("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error", f"--schema={schema}",
          f"--dbname={dsn}", str(dump_file)], env)


def resend(url: str, schema: str) -> int:
    """Mark every outbox row of the schema unsent, so the relay publishes it into the new JetStream store."""
    status = asyncio.run(_execute(url, f'UPDATE "{schema}".outbox SET sent_at = NULL WHERE sent_at IS NOT NULL'))
    return int(status.split()[-1])
