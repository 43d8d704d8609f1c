"""Reports: ≥ 30 task items, ranking, colours, trends; the CSV and the XLSX hold exactly what the JSON holds."""
from __future__ import annotations

import csv
import io
from typing import Any

import openpyxl
import pytest

from tests.helpers import Service, assert_problem, eventually
from tests.services.assessment.test_example import load_example


def csv_tables(body: bytes) -> dict[str, list[list[str]]]:
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    tables: dict[str, list[list[str]]] = {}
    current = None
    for row in rows[1:]:
        if not row:
            continue
        if row[0].startswith("# "):
            current = tables.setdefault(row[0][2:], [])
            continue
        assert current is not None
        current.append(row)
    return tables


def cell(value: Any) -> str:
    if value is None:
        return ""
    return str(value)


def as_rows(report: dict[str, Any]) -> tuple[list[list[Any]], list[list[Any]]]:
    stations = report["stations"]
    items = [[i["section"], i["id"], i["name"], i["name_zh"], i["unit"], i["district"], i["previous"], i["trend"],
              *[i["stations"][s] for s in stations]] for i in report["items"]]
    keys = ["mode", "rank_in_mode", "station_id", "name", "total", "outcome", "process", "colour", "previous_total",
            "trend"]
    return items, [[r[k] for k in keys] for r in report["ranking"]]


async def test_the_monthly_report_has_30_items_and_csv_and_xlsx_match_the_json(assessment: Service) -> None:
    await load_example(assessment)
    params = {"period": "2024-05"}

    data = (await assessment.get("/api/v1/reports/monthly", **params)).json()
    as_csv = await assessment.get("/api/v1/reports/monthly", format="csv", **params)
    as_xlsx = await assessment.get("/api/v1/reports/monthly", format="xlsx", **params)

    assert len(data["items"]) >= 30
    by_id = {i["id"]: i for i in data["items"]}
    assert by_id["accidents"]["district"] == 6 and by_id["accidents"]["stations"]["ps-a"] == 4
    # May 2000 + 500 + 1600, April 1000
    assert by_id["educated"]["previous"] == 1000 and by_id["educated"]["trend"] == 3100
    assert by_id["helmet_wearing_rate"]["district"] == pytest.approx(80.0)  # (180 + 60) / (200 + 100)
    assert by_id["hazard_remediation_rate"]["stations"]["ps-b"] is None  # no hazards found: missing, not 0
    assert [(r["station_id"], r["rank_in_mode"], r["colour"]) for r in data["ranking"]] == [
        ("ps-c", 1, "yellow"), ("ps-a", 1, "yellow"), ("ps-b", 2, "red")]
    assert data["colours"] == {"yellow": 2, "red": 1}

    items, ranking = as_rows(data)
    assert as_csv.headers["content-type"].startswith("text/csv")
    tables = csv_tables(as_csv.content)
    assert tables["Items"][1:] == [[cell(v) for v in row] for row in items]
    assert tables["Ranking"][1:] == [[cell(v) for v in row] for row in ranking]

    book = openpyxl.load_workbook(io.BytesIO(as_xlsx.content))
    assert book.sheetnames == ["Summary", "Items", "Ranking"]
    assert [list(r) for r in book["Items"].iter_rows(min_row=2, values_only=True)] == items
    assert [list(r) for r in book["Ranking"].iter_rows(min_row=2, values_only=True)] == ranking
    red_row = next(r for r in book["Ranking"].iter_rows(min_row=2) if r[2].value == "ps-b")
    assert red_row[7].fill.fgColor.rgb.endswith("F4B183")


async def test_a_daily_report_carries_the_board_and_a_station_gets_its_own(assessment: Service) -> None:
    await load_example(assessment)

    daily = await assessment.get("/api/v1/reports/daily", role="station", unit_id="ps-a", period="2024-05-06",
                                 format="xlsx")
    weekly = await assessment.get("/api/v1/reports/weekly", role="station", unit_id="ps-a", period="2024-W19")
    other = await assessment.get("/api/v1/reports/monthly", role="station", unit_id="ps-a", station_id="ps-b")

    book = openpyxl.load_workbook(io.BytesIO(daily.content))
    assert book.sheetnames == ["Summary", "Items", "Ranking", "Board"]
    assert {r[0] for r in book["Board"].iter_rows(min_row=2, values_only=True)} == {"ps-a"}
    assert len(list(book["Board"].iter_rows(min_row=2))) == 8
    body = weekly.json()
    assert (body["start"], body["end"], body["scope"]) == ("2024-05-06", "2024-05-12", "ps-a")
    assert {i["id"]: i["district"] for i in body["items"]}["educated"] == 1500
    assert_problem(other, 404)


async def test_a_report_job_answers_at_once_and_its_file_comes_later(assessment: Service) -> None:
    await load_example(assessment)

    started = await assessment.client.post("/api/v1/reports/jobs", params={"kind": "monthly", "period": "2024-05"},
                                           headers=assessment.as_("command"))
    job_id = started.json()["id"]

    async def done() -> bool:
        r = await assessment.get(f"/api/v1/reports/jobs/{job_id}")
        return r.json()["status"] == "done"

    await eventually(done, what="the report job")
    file = await assessment.get(f"/api/v1/reports/jobs/{job_id}/file")
    stranger = await assessment.get(f"/api/v1/reports/jobs/{job_id}", role="admin")

    assert started.status_code == 202 and started.json()["status"] in ("running", "done")
    assert openpyxl.load_workbook(io.BytesIO(file.content))["Ranking"].max_row == 4
    assert_problem(stranger, 404)


async def test_bad_report_periods_are_422(assessment: Service) -> None:
    for kind, period in [("monthly", "2024-13"), ("weekly", "2024-05"), ("daily", "May"), ("yearly", "2024")]:
        r = await assessment.get(f"/api/v1/reports/{kind}", period=period)

        assert_problem(r, 422)


async def test_the_demo_month_spreads_colours_and_ranks_within_each_mode(assessment: Service) -> None:
    from deploy.demo_activities import month_of_activities
    from tests.services.assessment.helpers import mode, unit

    pops = {"ps-chengxiang": 210_000, "ps-beigan": 180_000, "ps-xintang": 150_000, "ps-wenyan": 120_000,
            "ps-yiqiao": 60_000, "ps-heshang": 55_000}
    modes = dict(zip(pops, ["full", "full", "deep", "deep", "basic", "basic"], strict=True))
    await assessment.publish(*[unit(s, population=p) for s, p in pops.items()],
                             *[mode(s, m) for s, m in modes.items()], wait=True)
    records = month_of_activities(pops, "2024-05")
    for i in range(0, len(records), 1000):
        r = await assessment.post("/api/v1/activities:batch", records[i:i + 1000])
        assert r.json()["rejected"] == 0, r.text

    rows = (await assessment.get("/api/v1/assessment/scores", period="2024-05")).json()["stations"]

    assert len({r["colour"] for r in rows}) >= 2
    assert sorted((r["mode"], r["rank_in_mode"]) for r in rows) == [
        ("basic", 1), ("basic", 2), ("deep", 1), ("deep", 2), ("full", 1), ("full", 2)]


async def _unasked(assessment: Service, path: str, **params: Any) -> Any:
    """A GET from a caller who names no language (no Accept-Language, no lang=)."""
    request = assessment.client.build_request("GET", path, params=params, headers=assessment.as_("command"))
    del request.headers["accept-language"]
    return await assessment.client.send(request)


async def test_downloads_are_chinese_by_default_and_english_on_request(assessment: Service) -> None:
    await load_example(assessment)
    xlsx = await _unasked(assessment, "/api/v1/reports/monthly", period="2024-05", format="xlsx")
    as_csv = await _unasked(assessment, "/api/v1/reports/monthly", period="2024-05", format="csv")
    data = (await _unasked(assessment, "/api/v1/reports/monthly", period="2024-05")).json()
    english = await assessment.get("/api/v1/reports/monthly", period="2024-05", format="xlsx", lang="en")

    book = openpyxl.load_workbook(io.BytesIO(xlsx.content))
    assert book.sheetnames == ["汇总", "工作事项", "排名"]
    assert [c.value for c in book["工作事项"][1]][:7] == [
        "板块", "事项编码", "事项名称", "单位", "全区", "上期", "环比变化"]
    assert [c.value for c in book["排名"][1]][:3] == ["融合模式", "模式内排名", "派出所"]
    rows = {r[1]: r for r in book["工作事项"].iter_rows(min_row=2, values_only=True)}
    assert rows["accidents"][2] == "事故警情" and rows["accidents"][4] == 6  # numbers stay numbers
    red = next(r for r in book["排名"].iter_rows(min_row=2) if r[6].value == "红色")
    assert red[6].fill.fgColor.rgb.endswith("F4B183")
    assert book["汇总"]["A1"].value == "报表" and book["汇总"]["B1"].value == "月报"
    assert book["汇总"]["B3"].value == "2024年5月1日"  # downloads format dates for the reader

    assert as_csv.content.startswith(b"\xef\xbb\xbf")  # the BOM: Excel opens the UTF-8 without mojibake
    text = as_csv.content.decode("utf-8-sig")
    assert "# 工作事项" in text and "事故警情" in text
    assert data["lang"] == "zh-CN" and data["start"] == "2024-05-01"  # JSON keeps ISO 8601
    assert {i["id"]: i["label"] for i in data["items"]}["accidents"] == "事故警情"
    assert {r["colour_label"] for r in data["ranking"]} == {"黄色", "红色"}
    assert openpyxl.load_workbook(io.BytesIO(english.content)).sheetnames == ["Summary", "Items", "Ranking"]
