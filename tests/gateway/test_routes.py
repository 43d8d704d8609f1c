"""The gateway routing table and the coarse role check at the door."""
from __future__ import annotations

import pytest

from gateway.policy import door_allows, named_units, within_jurisdiction
from gateway.routes import ROUTES, Router
from shared.auth import Identity

UPSTREAMS = {name: f"http://{name}.internal:9000" for name in ("classification", "tracing", "dispatch", "assessment")}


@pytest.fixture(scope="module")
def router() -> Router:
    return Router(UPSTREAMS)


@pytest.mark.parametrize(("path", "service"), [
    # row 1: station features and mode overrides
    ("/api/v1/stations/s1/features", "classification"),
    ("/api/v1/stations/s1/mode-override", "classification"),
    # row 2: station score
    ("/api/v1/stations/s1/score", "assessment"),
    # row 3: tracing an incident
    ("/api/v1/incidents/x/trace", "tracing"),
    # row 4: dispatch's resources
    ("/api/v1/stations", "dispatch"),
    ("/api/v1/stations/s1", "dispatch"),
    ("/api/v1/stations/s1/area", "dispatch"),
    ("/api/v1/incidents", "dispatch"),
    ("/api/v1/incidents/x", "dispatch"),
    ("/api/v1/incidents:batch", "dispatch"),
    ("/api/v1/tasks", "dispatch"),
    ("/api/v1/tasks/t1/status", "dispatch"),
    ("/api/v1/units/u1", "dispatch"),
    # row 5: classification runs
    ("/api/v1/classification", "classification"),
    ("/api/v1/classification/runs/r1", "classification"),
    # row 6: tracing's registers
    ("/api/v1/tracing/catalogue", "tracing"),
    ("/api/v1/persons", "tracing"),
    ("/api/v1/vehicles/v1", "tracing"),
    ("/api/v1/enterprises", "tracing"),
    ("/api/v1/villages/v1", "tracing"),
    ("/api/v1/road-sections", "tracing"),
    ("/api/v1/hazards/h1", "tracing"),
    # row 7: assessment
    ("/api/v1/assessment/periods", "assessment"),
    ("/api/v1/board", "assessment"),
    ("/api/v1/reports/r1", "assessment"),
    ("/api/v1/activities", "assessment"),
])
def test_upstream_for_each_routing_row(router: Router, path: str, service: str) -> None:
    assert router.upstream(path) == UPSTREAMS[service]


@pytest.mark.parametrize("path", [
    "/api/v1/nope", "/api/v1/", "/api/v2/stations", "/stations", "/api/v1/boards", "/api/v1/taskslist",
    "/api/v1/assessmentx", "/x/api/v1/board",
])
def test_unknown_paths_have_no_upstream(router: Router, path: str) -> None:
    assert router.upstream(path) is None


@pytest.mark.parametrize("path", ["/api/v1/incidents/x/trace/extra", "/api/v1/stations/s1/features/extra"])
def test_deeper_paths_fall_through_to_the_owning_collection(router: Router, path: str) -> None:
    assert router.upstream(path) == UPSTREAMS["dispatch"]


def test_every_route_row_is_reachable(router: Router) -> None:
    samples = ["/api/v1/stations/s1/features", "/api/v1/stations/s1/score", "/api/v1/incidents/x/trace",
               "/api/v1/tasks", "/api/v1/classification", "/api/v1/persons", "/api/v1/board"]
    assert len(samples) == len(ROUTES)
    for sample, (pattern, service) in zip(samples, ROUTES, strict=True):
        assert router.upstream(sample) == UPSTREAMS[service], pattern


def test_trailing_slash_on_upstream_is_stripped() -> None:
    router = Router({name: url + "/" for name, url in UPSTREAMS.items()})
    assert router.upstream("/api/v1/board") == UPSTREAMS["assessment"]


def test_extra_routes_take_precedence() -> None:
    router = Router(UPSTREAMS, [(r"^/api/v1/tasks", "http://bench:7000/"), (r"^/api/v1/echo", "http://echo:7001")])
    assert router.upstream("/api/v1/tasks/t1") == "http://bench:7000"
    assert router.upstream("/api/v1/echo/anything") == "http://echo:7001"
    assert router.upstream("/api/v1/board") == UPSTREAMS["assessment"]


PLATFORM = Identity(username="platform", role="platform")


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/api/v1/incidents"), ("POST", "/api/v1/incidents:batch"), ("POST", "/api/v1/activities"),
    ("POST", "/api/v1/persons"), ("POST", "/api/v1/hazards"), ("GET", "/api/v1/incidents"),
    ("GET", "/api/v1/incidents/x"), ("GET", "/api/v1/persons"), ("POST", "/api/v1/activities:batch"),
])
def test_platform_may_submit_and_read_back(method: str, path: str) -> None:
    assert door_allows(PLATFORM, method, path)


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/v1/tasks"), ("POST", "/api/v1/units"), ("POST", "/api/v1/tasks"), ("GET", "/api/v1/board"),
    ("PUT", "/api/v1/incidents/x"), ("DELETE", "/api/v1/incidents/x"), ("PATCH", "/api/v1/incidents"),
    ("POST", "/api/v1/incidents/x"), ("GET", "/api/v1/incidents/x/trace"), ("GET", "/api/v1/tasks/stream"),
    ("POST", "/api/v1/personsx"), ("PUT", "/api/v1/tracing/models/P01"),
])
def test_platform_is_refused_everything_else(method: str, path: str) -> None:
    assert not door_allows(PLATFORM, method, path)


@pytest.mark.parametrize("role", ["admin", "command", "squadron", "station"])
@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/v1/tasks"), ("POST", "/api/v1/tasks/t1/transitions"), ("GET", "/api/v1/stations/s1/score"),
])
def test_officers_pass_the_door_for_unlisted_routes(role: str, method: str, path: str) -> None:
    assert door_allows(Identity(username="u", role=role, unit_id="s1"), method, path)  # type: ignore[arg-type]


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("POST", "/api/v1/units", {"admin"}),
    ("PUT", "/api/v1/tracing/models/P01", {"admin"}),
    ("POST", "/api/v1/classification/runs", {"admin", "command"}),
    ("PUT", "/api/v1/stations/s1/mode-override", {"admin", "command"}),
    ("POST", "/api/v1/incidents", {"admin", "command", "platform"}),
])
def test_restricted_writes_admit_only_their_roles(method: str, path: str, allowed: set[str]) -> None:
    for role in ("admin", "command", "squadron", "station", "platform"):
        identity = Identity(username="u", role=role, unit_id="s1")  # type: ignore[arg-type]
        assert door_allows(identity, method, path) == (role in allowed), role


TREE = {"sq-a": "brigade", "ps-1": "sq-a", "ps-2": "sq-a", "ps-3": "sq-b", "sq-b": "brigade"}


@pytest.mark.parametrize(("path", "query", "names"), [
    ("/api/v1/stations/ps-1/score", "", ["ps-1"]),
    ("/api/v1/tasks", "unit_id=ps-2&status=x", ["ps-2"]),
    ("/api/v1/incidents", "station_id=ps-1&station_id=ps-3", ["ps-1", "ps-3"]),
    ("/api/v1/incidents", "limit=5", []),
    ("/api/v1/stations", "", []),
])
def test_named_units_are_read_from_path_and_filters(path: str, query: str, names: list[str]) -> None:
    assert named_units(path, query) == names


@pytest.mark.parametrize(("identity", "names", "inside"), [
    (Identity(username="ps-1", role="station", unit_id="ps-1"), ["ps-1"], True),
    (Identity(username="ps-1", role="station", unit_id="ps-1"), ["ps-2"], False),
    (Identity(username="ps-1", role="station", unit_id="ps-1"), ["ps-1", "ps-2"], False),
    (Identity(username="sq-a", role="squadron", unit_id="sq-a"), ["ps-1", "ps-2", "sq-a"], True),
    (Identity(username="sq-a", role="squadron", unit_id="sq-a"), ["ps-3"], False),
    (Identity(username="c", role="command"), ["ps-3"], True),
    (Identity(username="ps-1", role="station", unit_id="ps-1"), [], True),
])
def test_jurisdiction_of_named_units(identity: Identity, names: list[str], inside: bool) -> None:
    assert within_jurisdiction(identity, names, TREE) is inside


def test_squadron_without_a_unit_tree_is_left_to_the_service() -> None:
    squadron = Identity(username="sq-a", role="squadron", unit_id="sq-a")
    assert within_jurisdiction(squadron, ["ps-3"], None)
    assert not within_jurisdiction(Identity(username="ps-1", role="station", unit_id="ps-1"), ["ps-3"], None)
