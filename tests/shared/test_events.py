"""The event contracts: envelope round trip, subjects, owners, frozen facts and stream names."""
from __future__ import annotations

import datetime as dt
import re

import pytest
from pydantic import ValidationError

from shared.events import (
    ALL_FACTS,
    OWNERS,
    Envelope,
    IncidentReported,
    Location,
    StationClassified,
    TaskOrderGenerated,
    UnitUpserted,
    stream_name,
)

SUBJECT = re.compile(r"^(?P<owner>[a-z]+)\.(?P<entity>[a-z_]+)\.(?P<event>[a-z_]+)\.v(?P<version>[1-9]\d*)$")


def _incident() -> IncidentReported:
    return IncidentReported(
        incident_id="inc-1", external_id="ext-1", kind="collision",
        occurred_at=dt.datetime(2024, 5, 1, 8, 30, tzinfo=dt.UTC), location=Location(lat=30.5, lon=114.3),
        station_id="s1",
    )


def test_envelope_json_round_trip_keeps_id_type_time_and_data() -> None:
    fact = _incident()
    sent = Envelope(source="dispatch", type=fact.subject, subject="inc-1",
                    time=dt.datetime(2024, 5, 1, 8, 31, 5, 123456, tzinfo=dt.UTC), data=fact.model_dump(mode="json"))
    received = Envelope.model_validate_json(sent.model_dump_json())
    assert received.id == sent.id
    assert received.type == "dispatch.incident.reported.v1"
    assert received.time == sent.time
    assert received.data == sent.data
    assert received.subject == "inc-1"
    assert received.payload(IncidentReported) == fact


def test_envelopes_get_distinct_ids_by_default() -> None:
    now = dt.datetime.now(dt.UTC)
    first = Envelope(source="x", type="t", time=now, data={})
    second = Envelope(source="x", type="t", time=now, data={})
    assert first.id != second.id


def test_envelope_rejects_other_specversion() -> None:
    with pytest.raises(ValidationError):
        Envelope(specversion="0.3", source="x", type="t", time=dt.datetime.now(dt.UTC), data={})


@pytest.mark.parametrize(("fact", "owner"), [
    (IncidentReported, "dispatch"), (UnitUpserted, "dispatch"), (TaskOrderGenerated, "tracing"),
    (StationClassified, "classification"),
])
def test_owner_is_first_segment_of_subject(fact: type, owner: str) -> None:
    assert fact.owner() == owner


def test_facts_are_frozen() -> None:
    fact = _incident()
    with pytest.raises(ValidationError):
        fact.station_id = "s2"  # type: ignore[misc]
    assert fact.station_id == "s1"


def test_payload_ignores_unknown_fields_for_additive_changes() -> None:
    data = _incident().model_dump(mode="json") | {"added_in_a_later_version": 1}
    assert IncidentReported.model_validate(data) == _incident()


@pytest.mark.parametrize("fact", ALL_FACTS, ids=lambda f: f.__name__)
def test_every_fact_subject_is_owner_entity_event_version(fact: type) -> None:
    match = SUBJECT.match(fact.subject)
    assert match, f"{fact.__name__}.subject {fact.subject!r} is not <owner>.<entity>.<event>.v<N>"
    assert match["owner"] in OWNERS
    assert fact.owner() == match["owner"]


def test_subjects_are_unique() -> None:
    subjects = [f.subject for f in ALL_FACTS]
    assert len(subjects) == len(set(subjects))


@pytest.mark.parametrize(("owner", "stream"), [
    ("dispatch", "DISPATCH"), ("tracing", "TRACING"), ("classification", "CLASSIFICATION"),
    ("assessment", "ASSESSMENT"),
])
def test_stream_name_is_upper_case_owner(owner: str, stream: str) -> None:
    assert stream_name(owner) == stream
