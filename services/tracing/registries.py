"""The five source registries: upserts on natural keys, listing, and resolving an incident's parties.

Identity numbers arrive only here (persons API) or already hashed (incident events); they are hashed with
the service key, masked for display, and never stored or logged in full.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.tracing import changes
from services.tracing.engine import Sources, plate_key
from services.tracing.index import Hazard, Section
from services.tracing.inputs import MAX_COUNT
from services.tracing.models import (
    Enterprise,
    HazardPoint,
    Person,
    RoadSection,
    Table,
    UnitCopy,
    Vehicle,
    Village,
)
from services.tracing.schemas import (
    EnterpriseIn,
    EnterpriseOut,
    HazardIn,
    HazardOut,
    PersonIn,
    PersonOut,
    RoadSectionIn,
    RoadSectionOut,
    VehicleIn,
    VehicleOut,
    VillageIn,
    VillageOut,
    lines,
)
from shared.db import utcnow
from shared.errors import Invalid, NotFound
from shared.events import IncidentReported, PartyFacts
from shared.inputs import storable_text
from shared.pagination import Keyset, PageRequest
from shared.privacy import hash_identity, mask_identity


async def _upsert(session: AsyncSession, table: type[Table], key: str, values: dict[str, Any]) -> tuple[Any, bool]:
    """Create the row or update it in place; returns (row, created). A changed row of a table the replicas
    mirror is stamped when the transaction commits (services/tracing/changes.py)."""
    mirrored = table in changes.MIRRORED
    if mirrored:
        changes.touched(session, table)
    row = await session.get(table, key)
    if row is None:
        row = table(**values, updated_at=utcnow())  # a new row starts unstamped
        session.add(row)
        return row, True
    changed = False
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    if changed:
        row.updated_at = utcnow()
        if mirrored:
            changes.unstamp(row)
    return row, False


async def put_person(session: AsyncSession, *, data: PersonIn, identity_key: str) -> tuple[Person, bool]:
    """Register a person (idempotent on the identity number)."""
    id_hash = hash_identity(identity_key, data.id_number)
    values = data.model_dump(exclude={"id_number"}) | {
        "id_hash": id_hash, "ref": id_hash[:32], "id_masked": mask_identity(data.id_number), "registered": True}
    return await _upsert(session, Person, id_hash, values)


async def put_vehicle(session: AsyncSession, *, data: VehicleIn) -> tuple[Vehicle, bool]:
    """Register a vehicle (idempotent on the plate)."""
    plate = plate_key(data.plate)
    if plate is None:
        raise Invalid("a plate needs letters or digits")
    return await _upsert(session, Vehicle, plate, data.model_dump() | {"plate": plate, "registered": True})


async def put_enterprise(session: AsyncSession, *, data: EnterpriseIn) -> tuple[Enterprise, bool]:
    """Register an operator (idempotent on id); its fleet's plates are linked to it."""
    values = data.model_dump(exclude={"fleet"}) | {"registered": True}
    row, created = await _upsert(session, Enterprise, data.id, values)
    for raw in data.fleet or []:
        plate = plate_key(raw)
        if plate is None:
            raise Invalid(f"fleet plate {raw!r} has no letters or digits")
        vehicle = await session.get(Vehicle, plate)
        if vehicle is None:
            session.add(Vehicle(plate=plate, operator_id=data.id, updated_at=utcnow()))
        elif vehicle.operator_id != data.id:
            vehicle.operator_id, vehicle.updated_at = data.id, utcnow()
    return row, created


async def put_village(session: AsyncSession, *, data: VillageIn) -> tuple[Village, bool]:
    """Register a village or community (idempotent on id)."""
    return await _upsert(session, Village, data.id, data.model_dump() | {"registered": True})


async def put_road_section(session: AsyncSession, *, data: RoadSectionIn) -> tuple[RoadSection, bool]:
    """Register a road section (idempotent on id); every replica's index learns it once committed."""
    return await _upsert(session, RoadSection, data.id, data.model_dump())


async def put_hazard(session: AsyncSession, *, data: HazardIn) -> tuple[HazardPoint, bool]:
    """Register or update a hazard point (idempotent on id); every replica's index keeps the open ones."""
    values = data.model_dump(exclude={"location"}) | {"lat": data.location.lat, "lon": data.location.lon}
    return await _upsert(session, HazardPoint, data.id, values)


def section_of(row: RoadSection) -> Section:
    """The index entry of a road section."""
    return Section(row.id, lines(row.geometry), row.lit, row.signalised, row.school_zone, row.name or "")


def hazard_of(row: HazardPoint) -> Hazard | None:
    """The index entry of a hazard point (None once remediated)."""
    return Hazard(row.id, row.lat, row.lon, row.kind) if row.status == "open" else None


# --- reading -----------------------------------------------------------------------------------

def person_out(row: Person) -> PersonOut:
    """A person as shown (masked)."""
    return PersonOut(id=row.ref, id_masked=row.id_masked, name=row.name, age=row.age,
                     licence_status=row.licence_status, unprocessed_violations=row.unprocessed_violations,
                     village_id=row.village_id, registered=row.registered)


async def enterprise_out(session: AsyncSession, row: Enterprise) -> EnterpriseOut:
    """An operator with the plates linked to it."""
    plates = list((await session.execute(
        select(Vehicle.plate).where(Vehicle.operator_id == row.id).order_by(Vehicle.plate))).scalars())
    return EnterpriseOut(id=row.id, name=row.name, inspection_rate=row.inspection_rate,
                         scrapping_rate=row.scrapping_rate, violation_clearing_rate=row.violation_clearing_rate,
                         fleet=plates, fleet_size=len(plates), registered=row.registered)


def hazard_out(row: HazardPoint) -> HazardOut:
    """A hazard point as shown."""
    return HazardOut(id=row.id, kind=row.kind, description=row.description,
                     location={"lat": row.lat, "lon": row.lon}, status=row.status,  # type: ignore[arg-type]
                     road_section_id=row.road_section_id, found_at=row.found_at, remediated_at=row.remediated_at)


REGISTRY: dict[str, tuple[type[Table], Any, Callable[[Any], BaseModel] | None]] = {
    "persons": (Person, Person.ref, None),
    "vehicles": (Vehicle, Vehicle.plate, lambda r: VehicleOut.model_validate(r, from_attributes=True)),
    "enterprises": (Enterprise, Enterprise.id, None),
    "villages": (Village, Village.id, lambda r: VillageOut.model_validate(r, from_attributes=True)),
    "road-sections": (RoadSection, RoadSection.id, lambda r: RoadSectionOut.model_validate(r, from_attributes=True)),
    "hazards": (HazardPoint, HazardPoint.id, hazard_out),
}


async def show(session: AsyncSession, row: Any, name: str) -> BaseModel:
    """A registry row as the API shows it."""
    if name == "persons":
        return person_out(row)
    if name == "enterprises":
        return await enterprise_out(session, row)
    shaper = REGISTRY[name][2]
    assert shaper is not None
    return shaper(row)


async def get_all(session: AsyncSession, *, name: str, page: PageRequest) -> tuple[list[BaseModel], str | None]:
    """One page of a registry in key order."""
    table, key, _ = REGISTRY[name]
    rows, next_cursor = await Keyset(key).page(session, select(table), page)
    return [await show(session, row, name) for row in rows], next_cursor


async def get(session: AsyncSession, *, name: str, key: str) -> BaseModel:
    """One registry record by its key (a person by its reference)."""
    table, column, _ = REGISTRY[name]
    if storable_text(key) is not None:
        raise NotFound(f"{name} not found")  # no stored key holds such characters
    if name == "vehicles":
        key = plate_key(key) or key
    row = (await session.execute(select(table).where(column == key))).scalar()
    if row is None:
        raise NotFound(f"{name} {key} not found")
    return await show(session, row, name)


# --- resolving an incident's parties (create-or-match) -------------------------------------------

def _record(row: Table | None, *fields: str) -> dict[str, Any]:
    return {f: getattr(row, f) for f in ("registered", *fields)} if row is not None else {}


async def resolve(session: AsyncSession, *, fact: IncidentReported) -> Sources:
    """Match each party's person, vehicle, operator and village in the registries, creating what is new.

    A record that already exists keeps its registered values; facts from the incident only fill gaps, so
    repeated incidents build up each person's, vehicle's and operator's history without overwriting it.
    """
    sources = Sources()
    now = utcnow()
    for party in _storable_parties(fact):
        p = party.person
        if p.id_hash:
            row = await session.get(Person, p.id_hash)
            if row is None:
                row = Person(id_hash=p.id_hash, ref=p.id_hash[:32], id_masked=p.id_masked, name=p.name, age=p.age,
                             licence_status=p.licence_status, unprocessed_violations=p.unprocessed_violations,
                             village_id=p.village_id, registered=False, updated_at=now)
                session.add(row)
            else:
                _fill(row, now, id_masked=p.id_masked, age=p.age, licence_status=p.licence_status,
                      unprocessed_violations=p.unprocessed_violations, village_id=p.village_id)
            sources.persons[p.id_hash] = _record(row, "id_masked", "age", "licence_status", "unprocessed_violations",
                                                 "village_id")
        village_id = p.village_id or (sources.persons.get(p.id_hash or "", {}).get("village_id"))
        if village_id and village_id not in sources.villages:
            village = await session.get(Village, village_id)
            if village is None:
                village = Village(id=village_id, registered=False, updated_at=now)
                session.add(village)
            sources.villages[village_id] = _record(village, "name", "residents", "station_id")
        v = party.vehicle
        plate = plate_key(v.plate) if v else None
        operator_id = v.operator_id if v else None
        if v and plate:
            row = await session.get(Vehicle, plate)
            if row is None:
                row = Vehicle(plate=plate, kind=v.kind, inspection_due=v.inspection_due, scrapped=v.scrapped,
                              modified=v.modified, operator_id=v.operator_id,
                              unprocessed_violations=v.unprocessed_violations, registered=False, updated_at=now)
                session.add(row)
            else:
                _fill(row, now, inspection_due=v.inspection_due, operator_id=v.operator_id,
                      unprocessed_violations=v.unprocessed_violations)
            sources.vehicles[plate] = _record(row, "kind", "inspection_due", "scrapped", "modified", "operator_id",
                                              "unprocessed_violations")
            operator_id = operator_id or row.operator_id
        if operator_id and operator_id not in sources.enterprises:
            enterprise = await session.get(Enterprise, operator_id)
            if enterprise is None:
                enterprise = Enterprise(id=operator_id, registered=False, updated_at=now)
                session.add(enterprise)
            sources.enterprises[operator_id] = _record(enterprise, "name", "inspection_rate", "scrapping_rate",
                                                       "violation_clearing_rate")
    if fact.station_id:
        station = await session.get(UnitCopy, fact.station_id)
        if station is not None:
            sources.station = {"id": station.id, "mode": station.mode, "area_type": station.area_type}
    await session.flush()
    return sources


def _fit(text: str | None, length: int) -> str | None:
    """Text from an event that fits its column (None otherwise: an incident's odd fact is dropped, not fatal)."""
    return text if text is not None and len(text) <= length and storable_text(text) is None else None


def _count(value: int | None) -> int | None:
    return value if value is not None and 0 <= value <= MAX_COUNT else None


def _storable_parties(fact: IncidentReported) -> list[PartyFacts]:
    """The incident's parties with every fact that would not fit tracing's columns dropped (the contract is looser
    than the tables: a huge violation count or an over-long id must not make the incident untraceable)."""
    out = []
    for party in fact.parties:
        p, v = party.person, party.vehicle
        person = p.model_copy(update={
            "id_hash": _fit(p.id_hash, 64), "id_masked": _fit(p.id_masked, 40), "name": _fit(p.name, 100),
            "unprocessed_violations": _count(p.unprocessed_violations), "village_id": _fit(p.village_id, 64)})
        vehicle = v.model_copy(update={
            "plate": v.plate if (key := plate_key(v.plate)) is not None and len(key) <= 20 else None,
            "operator_id": _fit(v.operator_id, 64),
            "unprocessed_violations": _count(v.unprocessed_violations)}) if v is not None else None
        out.append(party.model_copy(update={"person": person, "vehicle": vehicle}))
    return out


def _fill(row: Table, now: Any, **facts: Any) -> None:
    """Fill a registry record's empty fields from an incident's facts."""
    changed = False
    for name, value in facts.items():
        if value is not None and getattr(row, name) is None:
            setattr(row, name, value)
            changed = True
    if changed:
        row.updated_at = now  # type: ignore[attr-defined]
