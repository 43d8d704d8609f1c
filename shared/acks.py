"""A window of publishes awaiting their JetStream ack, bounded in count and in patience."""
from __future__ import annotations

import asyncio
from typing import Any


class AckWindow:
    """Counts publishes awaiting their ack; waits are bounded by time without any ack arriving."""

    def __init__(self, size: int, patience_s: float) -> None:
        self.size = size
        self.patience_s = patience_s
        self.open = 0
        self.progress = asyncio.Event()

    def track(self, future: asyncio.Future[Any]) -> None:
        """Count a sent publish until its ack (or error) arrives."""
        self.open += 1
        future.add_done_callback(self._settled)

    def _settled(self, _: asyncio.Future[Any]) -> None:
        self.open -= 1
        self.progress.set()

    async def _wait_below(self, limit: int) -> bool:
        while self.open > limit:
            self.progress.clear()
            try:
                await asyncio.wait_for(self.progress.wait(), self.patience_s)
            except TimeoutError:
                return False
        return True

    async def slot(self) -> bool:
        """Wait for room for one more publish; False if no ack arrived for `patience_s` while full."""
        return await self._wait_below(self.size - 1)

    async def drain(self) -> bool:
        """Wait for every ack; False if none arrived for `patience_s` while some were missing."""
        return await self._wait_below(0)
