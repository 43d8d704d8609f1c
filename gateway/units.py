"""The gateway's copy of the unit tree (unit → parent), read from dispatch, for squadron jurisdiction."""
from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

Fetch = Callable[[], Awaitable[list[dict]]]


class UnitTree:
    """Unit id → parent id, refreshed at most every `ttl_s`; None until dispatch has answered once."""

    def __init__(self, fetch: Fetch, ttl_s: float) -> None:
        self.fetch = fetch
        self.ttl_s = ttl_s
        self.parents: dict[str, str | None] | None = None
        self._fetched_at = -1e9

    async def get(self) -> dict[str, str | None] | None:
        """The tree, refreshed if stale; a failed refresh keeps the last copy."""
        now = time.monotonic()
        if now - self._fetched_at >= self.ttl_s:
            self._fetched_at = now
            try:
                units = await self.fetch()
                self.parents = {u["id"]: u.get("parent_id") for u in units}
            except Exception as exc:  # noqa: BLE001 - dispatch away: keep the last copy, services still check
                log.warning("could not refresh the unit tree: %s", type(exc).__name__)
        return self.parents
