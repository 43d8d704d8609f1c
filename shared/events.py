"""The contracts: every message that crosses a service boundary, with its subject and version.

Subjects are `<owner>.<entity>.<event>.v<N>`; one JetStream stream per owner holds `<owner>.>`.
Change a payload only additively; a breaking change is a new class with a new version.
"""
from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.texts import TextLine, Texts

OWNERS = ("classification", "tracing", "dispatch", "assessment")

Mode = Literal["basic", "deep", "full"]
AreaType = Literal["urban", "fringe", "rural"]
UnitKind = Literal["station", "squadron", "case_squadron", "order_squadron", "foundation_squadron", "brigade"]
Category = Literal[
    "personal_education", "personal_penalty", "enterprise_rectification", "enterprise_penalty", "hazard_remediation"
]
Source = Literal["person", "vehicle", "road", "enterprise", "village"]
ActivityKind = Literal[
    "education", "dissuasion", "helmet_check", "hazard_remediation", "violation", "drunk_driving_check",
    "post_operation", "map_colour",
]
VehicleKind = Literal[
    "car", "yellow_plate_truck", "engineering_truck", "goods_vehicle", "e_bike", "motorcycle", "bus", "other"
]


def stream_name(owner: str) -> str:
    """The JetStream stream that holds an owner's events."""
    return owner.upper()


class Fact(BaseModel):
    """A payload: a frozen, past-tense fact with its subject."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    subject: ClassVar[str]

    @classmethod
    def owner(cls) -> str:
        """The service that publishes this fact."""
        return cls.subject.split(".", 1)[0]


class Envelope(BaseModel):
    """CloudEvents 1.0 attributes around a typed payload."""

    model_config = ConfigDict(frozen=True)

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    source: str
    type: str
    subject: str | None = None
    time: dt.datetime
    datacontenttype: Literal["application/json"] = "application/json"
    data: dict[str, Any]

    def payload(self, model: type[Fact]) -> Fact:
        """The data as its typed contract."""
        return model.model_validate(self.data)


# --- the wire shapes of an incident ------------------------------------------------------------

class Location(BaseModel):
    """A WGS84 point."""

    model_config = ConfigDict(frozen=True)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class Severity(BaseModel):
    """Casualties of an incident."""

    model_config = ConfigDict(frozen=True)
    deaths: int = Field(0, ge=0)
    injuries: int = Field(0, ge=0)


class PersonFacts(BaseModel):
    """A party's person as it travels between services: the identity number only as hash and mask."""

    model_config = ConfigDict(frozen=True)
    id_hash: str | None = Field(None, description="keyed hash of the identity number")
    id_masked: str | None = Field(None, description="identity number with all but the ends masked")
    name: str | None = None
    age: int | None = Field(None, ge=0, le=130)
    licence_status: Literal["valid", "none", "suspended", "expired"] | None = None
    drunk: bool = False
    drugged: bool = False
    helmet: bool | None = None
    unprocessed_violations: int | None = Field(None, ge=0)
    village_id: str | None = None


class VehicleFacts(BaseModel):
    """A party's vehicle."""

    model_config = ConfigDict(frozen=True)
    plate: str | None = None
    kind: VehicleKind = "other"
    overloaded: bool = False
    modified: bool = False
    inspection_due: dt.date | None = None
    scrapped: bool = False
    operator_id: str | None = None
    unprocessed_violations: int | None = Field(None, ge=0)


class PartyFacts(BaseModel):
    """One party to an incident."""

    model_config = ConfigDict(frozen=True)
    role: Literal["driver", "rider", "pedestrian", "passenger"]
    person: PersonFacts = PersonFacts()
    vehicle: VehicleFacts | None = None


# --- dispatch ----------------------------------------------------------------------------------

class UnitUpserted(Fact):
    """A unit was created or changed."""

    subject: ClassVar[str] = "dispatch.unit.upserted.v1"
    unit_id: str
    name: str
    kind: UnitKind
    parent_id: str | None = None
    area_type: AreaType | None = None
    population: int | None = None
    area_km2: float | None = None


class IncidentReported(Fact):
    """An incident was received and placed in a station's area."""

    subject: ClassVar[str] = "dispatch.incident.reported.v1"
    incident_id: str
    external_id: str
    kind: str
    occurred_at: dt.datetime
    location: Location
    station_id: str | None = Field(None, description="None when the point lies outside every area")
    handling_unit_id: str | None = None
    severity: Severity = Severity()
    parties: list[PartyFacts] = []
    hit_and_run: bool = False
    lighting: Literal["daylight", "lit", "unlit"] | None = None
    junction: Literal["none", "signalled", "unsignalled"] | None = None
    school_zone: bool = False


class TaskChanged(Fact):
    """A task order moved from one status to another (old_status None: it was just created)."""

    subject: ClassVar[str] = "dispatch.task.changed.v1"
    task_id: str
    incident_id: str | None
    model_id: str
    category: Category
    station_id: str | None
    unit_id: str
    old_status: str | None
    new_status: str
    by: str
    at: dt.datetime
    deadline_at: dt.datetime | None = None
    note: str = ""
    previous_unit_id: str | None = None  # reassign: the unit the order moved away from


class IncidentDispatched(Fact):
    """An incident was handed to the unit that handles it (DOMAIN.md §5), with the reason."""

    subject: ClassVar[str] = "dispatch.incident.dispatched.v1"
    incident_id: str
    station_id: str | None
    handling_unit_id: str
    mode: Mode | None = None
    reported_at: dt.datetime
    dispatched_at: dt.datetime
    reason: str = ""


class IncidentArrived(Fact):
    """The handling unit reported arrival at the scene; `within_5_min` feeds the 5-minute arrival rate."""

    subject: ClassVar[str] = "dispatch.incident.arrived.v1"
    incident_id: str
    station_id: str | None
    handling_unit_id: str
    mode: Mode | None = None
    reported_at: dt.datetime
    arrived_at: dt.datetime
    response_s: float = Field(ge=0)
    within_5_min: bool


class TaskOverdue(Fact):
    """A task order (milestone None) or one of its milestones passed its deadline unfinished."""

    subject: ClassVar[str] = "dispatch.task.overdue.v1"
    task_id: str
    model_id: str
    category: Category
    station_id: str | None
    unit_id: str
    milestone: str | None = None
    deadline_at: dt.datetime
    at: dt.datetime


class TaskOverdueV2(TaskOverdue):
    """v2: `milestone` is the milestone's stable code (v1 named it by its English text)."""

    subject: ClassVar[str] = "dispatch.task.overdue.v2"
    milestone: str | None = Field(None, description="the milestone's code; None: the order itself is overdue")


class TaskEscalated(Fact):
    """An overdue task order was escalated to the unit's supervisor after the grace period."""

    subject: ClassVar[str] = "dispatch.task.escalated.v1"
    task_id: str
    model_id: str
    category: Category
    station_id: str | None
    unit_id: str
    supervisor_id: str | None
    overdue_since: dt.datetime
    at: dt.datetime


# --- tracing -----------------------------------------------------------------------------------

class Milestone(BaseModel):
    """A step of a task order with its own deadline."""

    model_config = ConfigDict(frozen=True)
    name: str
    due_at: dt.datetime


class TaskOrderGenerated(Fact):
    """A tracing model fired on an incident and produced a task order."""

    subject: ClassVar[str] = "tracing.task.generated.v1"
    task_id: str
    incident_id: str
    model_id: str
    model_version: int
    source: Source
    entity_ref: str
    category: Category
    station_id: str | None
    location: Location | None = None
    key_points: list[str] = []
    milestones: list[Milestone] = []
    measures: list[str] = []
    deadline_at: dt.datetime
    reason: str = Field("", description="why the model fired, for people")


class CodedMilestone(TextLine):
    """v2: a milestone by its stable code, its text in every language, and its deadline."""

    due_at: dt.datetime


class TaskOrderGeneratedV2(TaskOrderGenerated):
    """v2: key points, milestones and measures by code, with the texts of the model version that issued them
    (zh-CN and en; the reader's language is chosen when a person reads the order)."""

    subject: ClassVar[str] = "tracing.task.generated.v2"
    model_name: Texts | None = None
    key_points: list[TextLine] = []  # type: ignore[assignment]
    milestones: list[CodedMilestone] = []  # type: ignore[assignment]
    measures: list[TextLine] = []  # type: ignore[assignment]


# --- classification ----------------------------------------------------------------------------

class StationClassified(Fact):
    """A station's effective integration mode was set or changed."""

    subject: ClassVar[str] = "classification.station.classified.v1"
    station_id: str
    mode: Mode
    previous_mode: Mode | None = None
    source: Literal["model", "override"]
    run_id: str | None = None


# --- assessment --------------------------------------------------------------------------------

class ActivityRecorded(Fact):
    """An activity record (education, dissuasion, checks, violations…) was accepted for a station."""

    subject: ClassVar[str] = "assessment.activity.recorded.v1"
    activity_id: str
    external_id: str
    kind: ActivityKind
    station_id: str
    occurred_at: dt.datetime
    count: float = Field(1, ge=0)
    value: float | None = None
    details: dict[str, str | float | bool | None] = Field(
        {}, description="kind-specific facts, e.g. violation {type: drunk_driving}; hazard_remediation {found: 3}")


class ScoreUpdated(Fact):
    """A station's score for a period changed."""

    subject: ClassVar[str] = "assessment.score.updated.v1"
    station_id: str
    period: str
    mode: Mode | None = None
    total: float | None
    colour: Literal["blue", "yellow", "red"] | None = None


ALL_FACTS: tuple[type[Fact], ...] = (
    UnitUpserted, IncidentReported, IncidentDispatched, IncidentArrived, TaskChanged, TaskOverdue, TaskOverdueV2,
    TaskEscalated, TaskOrderGenerated, TaskOrderGeneratedV2, StationClassified, ActivityRecorded, ScoreUpdated,
)
