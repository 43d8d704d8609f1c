"""Writing the audit log: who changed what through the gateway (and who logged in), with the outcome and request id.

Entries are queued on the request path and written in batches by one background task, so a write
costs the caller no extra database round trip. Bodies are never recorded, and an identity number
that appears in a path is masked before it is stored.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import re

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.models import AuditEntry
from shared.db import utcnow

log = logging.getLogger(__name__)

_ID_NUMBER = re.compile(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9A-Za-z])")
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def mask_path(path: str) -> str:
    """The path with anything shaped like a resident identity number replaced."""
    return _ID_NUMBER.sub("***", path)[:512]


class AuditLog:
    """Queue of audit entries and the task that writes them."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, flush_s: float = 0.2) -> None:
        self.sessions = sessions
        self.flush_s = flush_s
        self._queue: asyncio.Queue[AuditEntry] = asyncio.Queue(maxsize=100_000)

    def record(self, *, username: str | None, role: str | None, method: str, path: str, status: int,
               request_id: str | None, client: str | None) -> None:
        """Queue one entry (never blocks the request; if the queue is full the entry is logged instead)."""
        entry = AuditEntry(at=utcnow(), username=(username or None) and username[:64], role=role, method=method,
                           path=mask_path(path), status=status, request_id=request_id and request_id[:128],
                           client=client and client[:64])
        try:
            self._queue.put_nowait(entry)
        except asyncio.QueueFull:
            log.warning("audit queue full; entry dropped: %s %s %s by %s", method, entry.path, status, username)

    async def run(self) -> None:
        """Write queued entries in batches until cancelled, then write what is left."""
        batch: list[AuditEntry] = []  # taken off the queue, not yet written: written on cancel too
        try:
            while True:
                batch = [await self._queue.get()]
                await asyncio.sleep(self.flush_s)
                batch += self._drain()
                await self._write(batch)
                batch = []
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                if batch := batch + self._drain():
                    await self._write(batch)
            raise

    async def flush(self) -> None:
        """Write whatever is queued now."""
        if batch := self._drain():
            await self._write(batch)

    def _drain(self) -> list[AuditEntry]:
        batch = []
        while not self._queue.empty():
            batch.append(self._queue.get_nowait())
        return batch

    async def _write(self, batch: list[AuditEntry]) -> None:
        try:
            async with self.sessions() as session, session.begin():
                session.add_all(batch)
        except Exception:  # noqa: BLE001 - the audit log must never take the gateway down
            log.exception("could not write %d audit entries", len(batch))
