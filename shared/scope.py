"""Jurisdiction, decided once: whose records a caller may see or act on.

`Scope.of(identity)` gives one of four scopes: the whole district (command, admin), a squadron's zone
(the squadron and the stations under it), one station, or a platform's own records. Each service turns it
into its own query filter (`clause`) or check (`covers`) from the unit copy it keeps: the rule is here,
the data is the service's. A role a list is not for is a 403 here, so every service refuses what the
gateway refuses.
"""
from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import false, or_

from shared.auth import Identity
from shared.errors import Forbidden

Kind = Literal["district", "zone", "station", "platform"]


@dataclass(frozen=True)
class Scope:
    """The part of the district a caller's records come from."""

    kind: Kind
    unit_id: str | None = None  # the station, or the squadron of a zone
    username: str | None = None  # the platform client

    @classmethod
    def of(cls, who: Identity, *, platforms: bool = False, what: str = "these records") -> Scope:
        """The caller's scope; Forbidden for a platform unless `platforms` (it sees only what it sent)."""
        if who.sees_whole_district:
            return cls("district")
        if who.role == "station" and who.unit_id:
            return cls("station", unit_id=who.unit_id)
        if who.role == "squadron" and who.unit_id:
            return cls("zone", unit_id=who.unit_id)
        if who.role == "platform" and platforms:
            return cls("platform", username=who.username)
        raise Forbidden(f"{'a platform client' if who.role == 'platform' else 'this role'} may not read {what}")

    @property
    def whole(self) -> bool:
        """Whether nothing is filtered."""
        return self.kind == "district"

    def covers(self, station_id: str | None, *, squadron_id: str | None = None, unit_ids: Collection[str] = (),
               owner: str | None = None) -> bool:
        """Whether a record of this station (whose squadron is `squadron_id`), handled by or escalated to
        `unit_ids`, sent by `owner`, is in the scope."""
        if self.kind == "district":
            return True
        if self.kind == "platform":
            return owner is not None and owner == self.username
        if self.unit_id in unit_ids:
            return True
        if self.kind == "station":
            return station_id is not None and station_id == self.unit_id
        return squadron_id is not None and squadron_id == self.unit_id

    def clause(self, station: Any, *, zone: Collection[str] = (), units: tuple[Any, ...] = (),
               owner: Any = None) -> Any:
        """A WHERE clause for a query (None: no filter). `station` is the record's station column, `zone` the
        ids of the stations under the squadron (the service reads them from its unit copy), `units` columns
        naming a unit that also brings the record into that unit's scope (handling unit, escalated to),
        `owner` the column naming the platform client that sent it."""
        if self.kind == "district":
            return None
        if self.kind == "platform":
            return owner == self.username if owner is not None else false()
        own = [column == self.unit_id for column in units]
        if self.kind == "station":
            return or_(station == self.unit_id, *own)
        return or_(station.in_(list(zone)), *own)

    def stations(self, known: dict[str, str | None]) -> set[str]:
        """Of the known stations (id → squadron id), those in the scope."""
        if self.kind == "district":
            return set(known)
        if self.kind == "station":
            return {self.unit_id} & set(known) if self.unit_id else set()
        if self.kind == "zone":
            return {sid for sid, parent in known.items() if parent == self.unit_id}
        return set()
