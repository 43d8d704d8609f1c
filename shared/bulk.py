"""Bulk INSERT straight through the driver's executemany, for tens of thousands of rows in one statement."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession

_PLACEHOLDERS = {"qmark": lambda i: "?", "numeric_dollar": lambda i: f"${i}", "format": lambda i: "%s",
                 "pyformat": lambda i: "%s", "numeric": lambda i: f":{i}"}


def _bind(table: Table, name: str, dialect: Dialect) -> Any:
    """The column type's conversion of a Python value for this driver (None when values pass as they are)."""
    column_type = table.c[name].type
    return column_type.dialect_impl(dialect).bind_processor(dialect)


async def insert_many(session: AsyncSession, table: Table, rows: Sequence[Mapping[str, Any]], *,
                      constants: Mapping[str, Any] | None = None) -> int:
    """INSERT `rows` (mappings with the same keys) plus `constants` (the same value in every row) in the
    session's transaction; return how many rows.

    Same values as `session.execute(table.insert(), rows)` (each column's type converts them: JSON, UTC
    timestamps), without SQLAlchemy's per-row parameter processing: constants are converted once, and
    columns whose type needs no conversion are passed as they are.
    """
    if not rows:
        return 0
    conn = await session.connection()
    dialect = conn.dialect
    names = list(rows[0])
    fixed = {name: (proc(value) if (proc := _bind(table, name, dialect)) else value)
             for name, value in (constants or {}).items()}
    processors = [_bind(table, name, dialect) for name in names]
    columns = names + list(fixed)
    placeholder = _PLACEHOLDERS[dialect.paramstyle]
    quote = dialect.identifier_preparer.quote
    sql = (f"INSERT INTO {dialect.identifier_preparer.format_table(table)} ({', '.join(quote(c) for c in columns)}) "
           f"VALUES ({', '.join(placeholder(i + 1) for i in range(len(columns)))})")
    tail = tuple(fixed.values())
    if any(processors):
        params = [tuple(proc(row[n]) if proc else row[n] for n, proc in zip(names, processors, strict=True)) + tail
                  for row in rows]
    else:
        params = [tuple(row[n] for n in names) + tail for row in rows]
    await conn.exec_driver_sql(sql, params)
    return len(params)
