"""Change stamps: every commit that writes a table the replicas mirror takes the next value of one clock.

A replica catches up by reading the rows stamped above its high-water mark (services/tracing/mirror.py). Plain
timestamps or a database sequence taken at write time would not do: on PostgreSQL transactions commit in another
order than they took their numbers, so a reader that remembers "the highest value seen" could skip a row that
commits later with a lower value. Here a writing transaction takes the clock's row lock only when it commits
(`before_commit`), stamps its rows with the new value and commits while still holding the lock; the next writer
waits for that commit before it reads the clock. So stamps become visible strictly in order: a reader that sees
clock value n knows that every row stamped n or less has committed. The lock is held for the stamping updates and
the commit only (milliseconds), not while the transaction does its work; on SQLite writers are serialised anyway.

Rows are written with `seq = UNSTAMPED` (the column default; an update sets it again) and stamped at commit with
`UPDATE … SET seq = n WHERE seq = -1`, an indexed lookup; a row some code path forgot to announce is stamped by the
next announcing commit instead of being lost.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from services.tracing.models import UNSTAMPED, ChangeClock, HazardPoint, ModelRevision, RoadSection, TracedIncident

#: the tables whose rows every replica mirrors in memory
MIRRORED: tuple[type[Any], ...] = (TracedIncident, HazardPoint, RoadSection, ModelRevision)
CLOCK_ID = 1
_KEY = "tracing_changes"


@dataclass
class _Pending:
    """What one transaction wrote to mirrored tables, and how to take back its in-memory effects."""

    tables: set[type[Any]] = field(default_factory=set)
    undo: list[Callable[[], None]] = field(default_factory=list)


def touched(session: AsyncSession, table: type[Any], *, undo: Callable[[], None] | None = None) -> None:
    """Announce that this transaction writes unstamped rows of a mirrored table: they get the clock's next value
    when it commits. `undo` runs if the transaction rolls back instead (to take back what the replica's memory
    already holds, such as an accident added to the index so that the rest of a batch sees it)."""
    if table not in MIRRORED:
        raise ValueError(f"{table.__name__} is not a mirrored table")
    sync = session.sync_session
    pending: _Pending | None = sync.info.get(_KEY)
    if pending is None:
        pending = sync.info[_KEY] = _Pending()
        if not event.contains(sync, "before_commit", _stamp):
            event.listen(sync, "before_commit", _stamp)
            event.listen(sync, "after_commit", _forget)
            event.listen(sync, "after_transaction_end", _take_back)
    pending.tables.add(table)
    if undo is not None:
        pending.undo.append(undo)


def unstamp(row: Any) -> None:
    """Mark an updated row of a mirrored table for stamping at commit."""
    row.seq = UNSTAMPED


async def clock(session: AsyncSession) -> int:
    """The clock's current value: every row stamped at or below it has committed."""
    return (await session.execute(select(ChangeClock.n).where(ChangeClock.id == CLOCK_ID))).scalar() or 0


def _stamp(session: Session) -> None:
    """before_commit: advance the clock (its row lock orders the commits) and stamp this transaction's rows."""
    pending: _Pending | None = session.info.get(_KEY)
    if pending is None or not pending.tables:
        return
    session.flush()
    advanced = session.execute(update(ChangeClock).where(ChangeClock.id == CLOCK_ID).values(n=ChangeClock.n + 1))
    if advanced.rowcount == 0:  # type: ignore[attr-defined]  # a schema made without the migration's row
        session.execute(insert(ChangeClock).values(id=CLOCK_ID, n=1))
    n = session.execute(select(ChangeClock.n).where(ChangeClock.id == CLOCK_ID)).scalar_one()
    for table in MIRRORED:  # a fixed order, so concurrent stampers lock tables alike
        if table in pending.tables:
            session.execute(update(table).where(table.seq == UNSTAMPED).values(seq=n))  # loaded rows follow


def _forget(session: Session) -> None:
    """after_commit: nothing to take back any more."""
    session.info.pop(_KEY, None)


def _take_back(session: Session, transaction: SessionTransaction) -> None:
    """after_transaction_end without a commit (rolled back, or the session closed): undo the in-memory effects."""
    if transaction.parent is not None:
        return  # a savepoint: its outer transaction decides
    pending: _Pending | None = session.info.pop(_KEY, None)
    for undo in reversed(pending.undo if pending else []):
        undo()
