"""`make bench` must not rot with the calendar: the incidents it offers are new enough to issue task orders."""
from __future__ import annotations

import datetime as dt

from bench.load import incident
from services.tracing.config import TracingSettings
from services.tracing.service import is_historical
from shared.events import IncidentReported, Location


def test_the_benchmarks_incidents_are_traced_as_live_not_back_filled() -> None:
    body = incident(0, "x")
    fact = IncidentReported(incident_id="i", external_id=body["external_id"], kind="accident",
                            occurred_at=dt.datetime.fromisoformat(body["occurred_at"]),
                            location=Location(**body["location"]), station_id="s")
    horizon = TracingSettings.model_fields["historical_after_h"].default
    assert not is_historical(fact, now=dt.datetime.now(dt.UTC), after_h=horizon)
    assert is_historical(fact, now=dt.datetime.now(dt.UTC) + dt.timedelta(hours=horizon + 1), after_h=horizon)
