"""`jiaozhi onboard DIR` and `jiaozhi onboard --template DIR` (deploy/onboard.py does the work; docs/ONBOARDING.md)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from deploy.onboard_read import FEATURES

console = Console(stderr=True)
EXIT_REFUSED = 2


def onboard(
    folder: Annotated[Path, typer.Argument(help="the district's folder: units.geojson, accounts.csv, optional "
                                                "features.csv, history.csv and registries (docs/ONBOARDING.md)")],
    template: Annotated[bool, typer.Option("--template", help="write a small documented example into FOLDER "
                                                              "instead")] = False,
    gateway: Annotated[str, typer.Option(envvar="JIAOZHI_URL", help="gateway base URL")] = "http://127.0.0.1:8000",
    username: Annotated[str, typer.Option(help="an admin account")] = "admin",
    password: Annotated[str | None, typer.Option(envvar="JIAOZHI_ONBOARD_PASSWORD", show_default=False,
                                                 help="the admin's password (prompted if not given)")] = None,
    passwords: Annotated[Path | None, typer.Option(help="where new accounts' passwords go (mode 0600); default "
                                                        "FOLDER/passwords.csv")] = None,
) -> None:
    """Onboard your own district through the public API: units, registries, accounts, features, history, first run.

    Everything is checked first; any problem → all of them listed (file, row, reason), nothing changed
    (exit code 2). Safe to run again: only what is new or different is sent, passwords are never replaced.
    """
    if template:
        write_template(folder)
        console.print(f"example district written to {folder}: edit it, then `jiaozhi onboard {folder}`")
        return
    import httpx

    from deploy.onboard import ApiError, Refused
    from deploy.onboard import onboard as run
    from importers.client import GaveUp

    secret = password if password is not None else typer.prompt(f"password of {username}", hide_input=True)
    try:
        summary = run(folder, gateway, username, secret, console=console, passwords_file=passwords)
    except Refused as refused:
        print_problems(refused.problems)
        raise typer.Exit(EXIT_REFUSED) from refused
    except (ApiError, GaveUp, httpx.HTTPError) as exc:
        console.print(f"[red]stopped:[/red] {exc}\nwhat was done is kept; run the same command again to go on")
        raise typer.Exit(1) from exc
    print_summary(summary)


def print_problems(problems: list[Any]) -> None:
    table = Table(title=f"{len(problems)} problem(s): nothing was changed")
    for column in ("file", "row", "reason"):
        table.add_column(column)
    for p in problems:
        table.add_row(p.file, "" if p.row is None else str(p.row), p.reason)
    console.print(table)


def print_summary(summary: dict[str, Any]) -> None:
    table = Table(title="onboarding" + ("" if summary["changed"] else ": nothing to change"))
    for column in ("", "created", "updated", "unchanged"):
        table.add_column(column)
    steps = [k for k in summary if isinstance(summary[k], dict) and "unchanged" in summary[k]]
    for step in steps:
        s = summary[step]
        table.add_row(step, str(len(s["created"])), str(len(s["updated"])), str(s["unchanged"]))
    console.print(table)
    for step in steps:
        for key, changes in summary[step]["updated"].items():
            console.print(f"  {step} {key}: {'; '.join(changes)}")
    if summary["accounts"]["created"]:
        console.print(f"new accounts' passwords: {summary['passwords_file']} (readable by you only; hand each "
                      "officer theirs, then keep or delete the file)")
    if (run := summary["classification"]) is not None:
        console.print(f"classification run {run['id']} over {run['period']}: {run['sizes']}")
    modes = Table(title="modes")
    modes.add_column("station")
    modes.add_column("mode")
    for station, mode in sorted(summary["modes"].items()):
        modes.add_row(station, mode or "— (no features yet)")
    console.print(modes)


def _square(x: float, y: float) -> dict:
    return {"type": "Polygon", "coordinates": [[[x, y], [x + 0.1, y], [x + 0.1, y + 0.1], [x, y + 0.1], [x, y]]]}


TEMPLATE_STATIONS = (  # id, name, squadron, area type, population, km², (lon, lat) of the south-west corner
    ("ps-north", "北街派出所 (North Street station)", "sq-town", "urban", 180000, 25.0, (120.0, 30.1)),
    ("ps-harbour", "港口派出所 (Harbour station)", "sq-town", "fringe", 120000, 60.0, (120.1, 30.1)),
    ("ps-valley", "山谷派出所 (Valley station)", "sq-country", "rural", 50000, 110.0, (120.2, 30.1)),
)
TEMPLATE_FEATURES = {"ps-north": (60, 40, 2.5, 50, 300, 3.0, 10, 1.1, 0.85, 5000),
                     "ps-harbour": (70, 33, 5.5, 11, 235, 4.6, 55, 0.7, 0.72, 3500),
                     "ps-valley": (34, 24, 18.0, 2.3, 150, 6.8, 6, 0.3, 0.64, 2600)}
TEMPLATE_README = """# An example district for `jiaozhi onboard`

Edit these files for your own district, then run `jiaozhi onboard THIS_FOLDER` against a running
system (`jiaozhi up --no-demo`) with an admin account. See docs/ONBOARDING.md ("Your own district").

- `units.geojson`: one GeoJSON Feature per unit. properties: `id` (letters, digits, `_.-`), `name`,
  `kind` (station — the default —, squadron, case_squadron, order_squadron, foundation_squadron,
  brigade), `parent_id`; stations also `area_type` (urban, fringe, rural), `population`, `area_km2`
  and optionally `villages` ([{id, name, kind: village|community, residents}]). A station's
  geometry is its area (Polygon/MultiPolygon, longitude then latitude); other units have `null`.
- `accounts.csv`: `username,role,unit`. Roles: admin, command, squadron, station (these two name
  their unit), platform (an integrating platform: a client with a secret).
- `features.csv` (optional): `station_id,period,<the ten features>` for the first classification
  (period `YYYY` or `YYYY-MM`). Without it stations get modes once events have built up features.
- `history.csv` (optional): `station_id,month,measure,value` — a year of monthly figures from before
  the system (measures such as `accidents`, `deaths`, `injuries`, `education`), so the year-on-year
  indicators have a base from the first month.
- `road-sections.geojson`, `hazards.csv`, `enterprises.csv` (optional): the registries tracing reads
  (road sections as LineStrings; hazard points `id,kind,description,lat,lon,status,road_section_id,
  found_at,remediated_at`; operators `id,name,inspection_rate,scrapping_rate,violation_clearing_rate,
  fleet` with plates separated by `;`).

New accounts' passwords are written to `passwords.csv` here (mode 0600), once; a re-run never
changes a password (`POST /api/v1/accounts/{username}/password` resets one).
"""


def write_template(folder: Path) -> None:
    """A small, valid example district in `folder` (existing files are not overwritten)."""
    folder.mkdir(parents=True, exist_ok=True)
    units: list[dict] = [{"type": "Feature", "geometry": None,
                          "properties": {"id": "brigade", "name": "交警大队 (traffic police brigade)",
                                         "kind": "brigade"}}]
    for sq, name in (("sq-town", "城区中队 (town squadron)"), ("sq-country", "农村中队 (country squadron)")):
        units.append({"type": "Feature", "geometry": None,
                      "properties": {"id": sq, "name": name, "kind": "squadron", "parent_id": "brigade"}})
    for sid, name, sq, area_type, population, km2, (x, y) in TEMPLATE_STATIONS:
        props: dict[str, Any] = {"id": sid, "name": name, "kind": "station", "parent_id": sq, "area_type": area_type,
                                 "population": population, "area_km2": km2}
        if area_type == "rural":
            props["villages"] = [{"id": f"{sid}-v01", "name": "上村 (Upper village)", "kind": "village",
                                  "residents": 1800}]
        units.append({"type": "Feature", "properties": props, "geometry": _square(x, y)})
    accounts = ["username,role,unit", "duty.command,command,", "town.lead,squadron,sq-town",
                "country.lead,squadron,sq-country", *(f"{sid}.duty,station,{sid}" for sid, *_ in TEMPLATE_STATIONS),
                "city-platform,platform,"]
    features = [",".join(("station_id", "period", *FEATURES)),
                *(",".join((sid, "2026", *map(str, values))) for sid, values in TEMPLATE_FEATURES.items())]
    history = ["station_id,month,measure,value", *(f"{sid},2025-{m:02d},{measure},{value}"
                                                   for sid, *_ in TEMPLATE_STATIONS for m in range(1, 13)
                                                   for measure, value in (("accidents", 4 + m % 3), ("deaths", m % 2)))]
    files = {"units.geojson": json.dumps({"type": "FeatureCollection", "features": units}, ensure_ascii=False,
                                         indent=1) + "\n",
             "accounts.csv": "\n".join(accounts) + "\n", "features.csv": "\n".join(features) + "\n",
             "history.csv": "\n".join(history) + "\n",
             "road-sections.geojson": json.dumps({"type": "FeatureCollection", "features": [{
                 "type": "Feature",
                 "geometry": {"type": "LineString", "coordinates": [[120.21, 30.12], [120.29, 30.18]]},
                 "properties": {"id": "rd-valley", "name": "山谷路 (Valley road)", "lit": False, "speed_limit": 40}}]},
                 ensure_ascii=False, indent=1) + "\n",
             "hazards.csv": "id,kind,description,lat,lon,status,road_section_id,found_at,remediated_at\n"
                            "hz-valley-bend,sharp_bend,急弯无警示 (unsigned bend),30.15,120.25,open,rd-valley,"
                            "2026-10-03T09:00:00+08:00,\n",
             "enterprises.csv": "id,name,inspection_rate,scrapping_rate,violation_clearing_rate,fleet\n"
                                "ent-harbour-bus,港口客运 (Harbour buses),0.9,0.85,0.7,浙A10001;浙A10002\n",
             "README.md": TEMPLATE_README}
    for name, text in files.items():
        path = folder / name
        if path.exists():
            console.print(f"{path} exists: left as it is")
            continue
        path.write_text(text, encoding="utf-8")
