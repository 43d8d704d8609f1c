"""one bookkeeping path for counts (station_day folded into measure), one station copy (station_mode into unit_copy)

Counts: each `station_day` column becomes a daily measure (incidents → `incidents`, deaths → `incident_deaths`,
injuries → `incident_injuries`, tasks_created → `tasks_created`). Where a measure row already holds the same count
(both paths counted every event since `measure` exists), the larger of the two stays: it holds the events the
other path missed (those before `measure` existed). Months whose counts moved are marked dirty, so their scores
are re-announced.

Modes: `unit_copy` gains `mode`; `name` and `kind` may be empty, for a station classified before dispatch
announced it (until now a `station_mode` row without a unit).

Revision ID: 5d2e0c7a91b4
Revises: 971a4e214832
Create Date: 2026-12-02 10:00:00
"""
from typing import Sequence, Union

import datetime as dt

from alembic import op
import sqlalchemy as sa
import sqlmodel
import shared.db


revision: str = '5d2e0c7a91b4'
down_revision: Union[str, None] = '971a4e214832'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

#: station_day column → the daily measure that counts it from now on
FOLDED = {"incidents": "incidents", "deaths": "incident_deaths", "injuries": "incident_injuries",
          "tasks_created": "tasks_created"}
#: the years a period may lie in (services/assessment/inputs.py: MIN_YEAR, MAX_YEAR), as `mark_dirty` bounds them
MIN_YEAR, MAX_YEAR = 1900, 2199

DIRTY = sa.table("dirty_period", sa.column("period", sa.String),
                 sa.column("marked_at", shared.db.UTCDateTime(timezone=True)))


def _differs(column: str) -> str:
    """station_day rows whose `column` is above what the measure holds (or the measure has no row)."""
    return (f"sd.{column} > 0 AND NOT EXISTS (SELECT 1 FROM measure m WHERE m.station_id = sd.station_id "
            f"AND m.day = sd.day AND m.measure = :measure AND m.value >= sd.{column})")


def _mark_dirty(conn: sa.Connection, days: set[dt.date]) -> None:
    months = set()
    for day in days:
        if MIN_YEAR <= day.year < MAX_YEAR:
            months.update({f"{day:%Y-%m}", f"{day.year + 1}-{day.month:02d}"})
    known = set(conn.execute(sa.select(DIRTY.c.period)).scalars())
    now = dt.datetime.now(dt.UTC)
    rows = [{"period": p, "marked_at": now} for p in sorted(months - known)]
    if rows:
        conn.execute(DIRTY.insert(), rows)


def upgrade() -> None:
    conn = op.get_bind()
    days: set[dt.date] = set()
    for column, measure in FOLDED.items():
        changed = conn.execute(sa.text(f"SELECT DISTINCT sd.day FROM station_day sd WHERE {_differs(column)}")
                               .columns(day=sa.Date), {"measure": measure}).scalars()
        days.update(changed)
        conn.execute(sa.text(
            f"UPDATE measure SET value = (SELECT sd.{column} FROM station_day sd WHERE sd.station_id = measure.station_id "
            f"AND sd.day = measure.day) WHERE measure.measure = :measure AND EXISTS (SELECT 1 FROM station_day sd "
            f"WHERE sd.station_id = measure.station_id AND sd.day = measure.day AND sd.{column} > measure.value)"),
            {"measure": measure})
        conn.execute(sa.text(
            f"INSERT INTO measure (station_id, day, measure, value) SELECT sd.station_id, sd.day, CAST(:measure AS VARCHAR(80)), "
            f"sd.{column} FROM station_day sd WHERE {_differs(column)}"), {"measure": measure})
    _mark_dirty(conn, days)
    op.drop_table('station_day')

    with op.batch_alter_table('unit_copy', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mode', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))
        batch_op.alter_column('name', existing_type=sqlmodel.sql.sqltypes.AutoString(), nullable=True)
        batch_op.alter_column('kind', existing_type=sqlmodel.sql.sqltypes.AutoString(), nullable=True)
    conn.execute(sa.text(
        "UPDATE unit_copy SET mode = (SELECT sm.mode FROM station_mode sm WHERE sm.station_id = unit_copy.id) "
        "WHERE EXISTS (SELECT 1 FROM station_mode sm WHERE sm.station_id = unit_copy.id)"))
    conn.execute(sa.text(
        "INSERT INTO unit_copy (id, mode, updated_at) SELECT sm.station_id, sm.mode, sm.updated_at FROM station_mode sm "
        "WHERE NOT EXISTS (SELECT 1 FROM unit_copy u WHERE u.id = sm.station_id)"))
    op.drop_table('station_mode')


def downgrade() -> None:
    op.create_table('station_mode',
    sa.Column('station_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('mode', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('updated_at', shared.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('station_id', name=op.f('pk_station_mode'))
    )
    op.create_table('station_day',
    sa.Column('station_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('incidents', sa.Integer(), nullable=False),
    sa.Column('deaths', sa.Integer(), nullable=False),
    sa.Column('injuries', sa.Integer(), nullable=False),
    sa.Column('tasks_created', sa.Integer(), nullable=False),
    sa.Column('updated_at', shared.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('station_id', 'day', name=op.f('pk_station_day'))
    )
    conn = op.get_bind()
    conn.execute(sa.text(
        "INSERT INTO station_mode (station_id, mode, updated_at) SELECT id, mode, updated_at FROM unit_copy "
        "WHERE mode IS NOT NULL"))
    conn.execute(sa.text("DELETE FROM unit_copy WHERE name IS NULL OR kind IS NULL"))
    with op.batch_alter_table('unit_copy', schema=None) as batch_op:
        batch_op.alter_column('kind', existing_type=sqlmodel.sql.sqltypes.AutoString(), nullable=False)
        batch_op.alter_column('name', existing_type=sqlmodel.sql.sqltypes.AutoString(), nullable=False)
        batch_op.drop_column('mode')
    sums = ", ".join(f"CAST(ROUND(SUM(CASE WHEN measure = '{m}' THEN value ELSE 0 END)) AS INTEGER)"
                     for m in FOLDED.values())
    rows = conn.execute(sa.text(
        f"SELECT station_id, day, {sums} FROM measure WHERE measure IN ({', '.join(repr(m) for m in FOLDED.values())}) "
        "GROUP BY station_id, day").columns(day=sa.Date)).all()
    table = sa.table("station_day", sa.column("station_id"), sa.column("day", sa.Date),
                     *[sa.column(c, sa.Integer) for c in FOLDED],
                     sa.column("updated_at", shared.db.UTCDateTime(timezone=True)))
    now = dt.datetime.now(dt.UTC)
    keep = [dict(zip(["station_id", "day", *FOLDED], r, strict=True), updated_at=now) for r in rows
            if r[2] or r[5]]
    if keep:
        conn.execute(table.insert(), keep)
    conn.execute(sa.text("DELETE FROM measure WHERE measure IN ('incident_deaths', 'incident_injuries')"))
