"""The UK police forces importer on the real files: 39 forces, City of London set aside, stable modes."""
from __future__ import annotations

from pathlib import Path

import pytest

from services.classification import uk_forces

DATA = Path(__file__).resolve().parents[2] / "data" / "uk_police_forces"


@pytest.fixture(scope="module")
def results() -> dict:
    return uk_forces.classify_years(uk_forces.load(DATA))


def test_the_files_join_into_39_english_forces_for_every_year() -> None:
    data = uk_forces.load(DATA)
    forces = {f for f, _ in data}
    assert len(forces) == 39
    assert {"Metropolitan", "City of London", "Devon and Cornwall", "Norfolk", "Suffolk"} <= forces
    assert len(data) == 39 * len(uk_forces.YEARS)


def test_2011_figures_match_the_source_rows() -> None:
    fy = uk_forces.load(DATA)[("Cumbria", 2011)]
    assert (fy.collisions, fy.fatal, fy.breath_tests, fy.population) == (1256, 28, 12829, 494350)


def test_city_of_london_is_an_outlier_every_year_and_takes_no_cluster_for_itself(results: dict) -> None:
    for year, result in results.items():
        assert [o.station_id for o in result.outliers] == ["City of London"], year
        assert min(result.sizes.values()) >= 5, (year, result.sizes)
        city = next(a for a in result.assignments if a.station_id == "City of London")
        assert city.outlier


def test_2011_groups_make_sense(results: dict) -> None:
    modes = {a.station_id: a.mode for a in results[2011].assignments}
    # rural forces with the highest fatal-collision rates are deep; London's force has the densest traffic
    assert {modes[f] for f in ("Cumbria", "Lincolnshire", "North Yorkshire", "Norfolk", "West Mercia")} == {"deep"}
    assert modes["Metropolitan"] == "basic"
    assert modes["West Midlands"] != "deep" and modes["Greater Manchester"] != "deep"
    centroids = results[2011].centroids
    assert centroids["deep"]["deaths_per_100k"] > max(centroids["basic"]["deaths_per_100k"],
                                                      centroids["full"]["deaths_per_100k"])


def test_modes_are_stable_between_consecutive_years(results: dict) -> None:
    ari = uk_forces.stability(results)
    assert len(ari) == 6
    assert sum(ari.values()) / len(ari) >= 0.8, ari
    assert min(ari.values()) >= 0.6, ari


def test_single_year_features_without_stickiness_flip_more(results: dict) -> None:
    plain = uk_forces.classify_years(uk_forces.load(DATA), stickiness=0.0, years=1)
    assert sum(uk_forces.stability(plain).values()) < sum(uk_forces.stability(results).values())
