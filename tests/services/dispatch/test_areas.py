"""Station areas: parsing GeoJSON polygons and locating a point with the first-id boundary rule."""
from __future__ import annotations

import pytest

from services.dispatch.areas import AreaIndex, parse_area
from shared.errors import Invalid


def square(x0: float, y0: float, size: float = 1.0) -> dict:
    """A GeoJSON Polygon; x is longitude, y is latitude."""
    ring = [[x0, y0], [x0 + size, y0], [x0 + size, y0 + size], [x0, y0 + size], [x0, y0]]
    return {"type": "Polygon", "coordinates": [ring]}


# a 2×2 grid of unit squares; ids deliberately not in spatial order
GRID = {
    "s-d": square(0, 0),  # lon 0..1, lat 0..1
    "s-b": square(1, 0),  # lon 1..2, lat 0..1
    "s-c": square(0, 1),  # lon 0..1, lat 1..2
    "s-a": square(1, 1),  # lon 1..2, lat 1..2
}


@pytest.fixture(scope="module")
def grid() -> AreaIndex:
    return AreaIndex.build(GRID)


@pytest.mark.parametrize(("lat", "lon", "station"), [
    (0.5, 0.5, "s-d"), (0.5, 1.5, "s-b"), (1.5, 0.5, "s-c"), (1.5, 1.5, "s-a"),
])
def test_point_inside_a_square_goes_to_its_station(grid: AreaIndex, lat: float, lon: float, station: str) -> None:
    assert grid.locate(lat, lon) == station


@pytest.mark.parametrize(("lat", "lon"), [(-0.5, 0.5), (0.5, 2.5), (3, 3), (-1, -1), (1.0, 2.0001)])
def test_point_outside_every_area_is_none(grid: AreaIndex, lat: float, lon: float) -> None:
    assert grid.locate(lat, lon) is None


def test_latitude_and_longitude_are_not_swapped() -> None:
    index = AreaIndex.build({"tall": {"type": "Polygon",
                                      "coordinates": [[[0, 0], [1, 0], [1, 10], [0, 10], [0, 0]]]}})
    assert index.locate(lat=5, lon=0.5) == "tall"
    assert index.locate(lat=0.5, lon=5) is None


@pytest.mark.parametrize(("lat", "lon", "station"), [
    (0.5, 1.0, "s-b"),  # edge between s-d and s-b
    (1.0, 0.5, "s-c"),  # edge between s-d and s-c
    (1.5, 1.0, "s-a"),  # edge between s-c and s-a
    (1.0, 1.5, "s-a"),  # edge between s-b and s-a
])
def test_point_on_shared_edge_goes_to_first_station_id(grid: AreaIndex, lat: float, lon: float, station: str) -> None:
    assert grid.locate(lat, lon) == station


def test_point_on_shared_corner_of_four_squares_goes_to_first_station_id(grid: AreaIndex) -> None:
    assert grid.locate(1.0, 1.0) == "s-a"


def test_point_on_outer_boundary_belongs_to_the_area(grid: AreaIndex) -> None:
    assert grid.locate(0.0, 0.5) == "s-d"
    assert grid.locate(2.0, 2.0) == "s-a"


def test_boundary_rule_does_not_depend_on_insertion_order() -> None:
    forward = AreaIndex.build({"b": square(0, 0), "a": square(1, 0)})
    backward = AreaIndex.build({"a": square(1, 0), "b": square(0, 0)})
    assert forward.locate(0.5, 1.0) == backward.locate(0.5, 1.0) == "a"
    assert forward.locate(0.5, 0.5) == backward.locate(0.5, 0.5) == "b"


def test_accepts_a_feature_wrapping_a_polygon() -> None:
    polygon = parse_area({"type": "Feature", "properties": {"name": "s1"}, "geometry": square(0, 0, 2)})
    assert polygon.area == pytest.approx(4.0)


def test_accepts_a_multipolygon() -> None:
    multi = {"type": "MultiPolygon",
             "coordinates": [square(0, 0)["coordinates"], square(5, 5)["coordinates"]]}
    index = AreaIndex.build({"s1": multi})
    assert index.locate(5.5, 5.5) == "s1"
    assert index.locate(3, 3) is None


@pytest.mark.parametrize("geojson", [
    {"type": "Point", "coordinates": [0, 0]},
    {"type": "LineString", "coordinates": [[0, 0], [1, 1]]},
    {"type": "Feature", "geometry": {"type": "Point", "coordinates": [0, 0]}},
    {"type": "Feature", "geometry": None},
], ids=["point", "linestring", "feature-point", "feature-null"])
def test_rejects_non_polygons(geojson: dict) -> None:
    with pytest.raises(Invalid):
        parse_area(geojson)


def test_rejects_self_intersecting_bowtie() -> None:
    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}
    with pytest.raises(Invalid, match="self-intersecting"):
        parse_area(bowtie)


@pytest.mark.parametrize("garbage", [
    None, "Polygon", 42, [], {}, {"type": "Polygon"}, {"type": "Polygon", "coordinates": "nope"},
    {"type": "Polygon", "coordinates": [[[0, 0], [1, 0]]]}, {"type": "Polygon", "coordinates": [[["a", "b"]]]},
    {"type": "Polygon", "coordinates": []},
    {"type": "Polygon", "coordinates": [[[float("nan"), 0], [1, 0], [1, 1], [0, 0]]]},
    {"type": "MultiPolygon"},
])
def test_rejects_garbage(garbage: object) -> None:
    with pytest.raises(Invalid):
        parse_area(garbage)  # type: ignore[arg-type]


def test_building_an_index_with_a_bad_area_is_invalid() -> None:
    with pytest.raises(Invalid):
        AreaIndex.build({"ok": square(0, 0), "bad": {"type": "Point", "coordinates": [0, 0]}})
