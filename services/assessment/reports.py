"""Daily, weekly and monthly reports: 44 task items, ranking tables, colours and trends; JSON, CSV and XLSX."""
from __future__ import annotations

import csv
import datetime as dt
import io
from collections import Counter
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from services.assessment import board as board_mod
from services.assessment import history, periods
from services.assessment.items import catalogue, item_value
from services.assessment.periods import Period
from services.assessment.service import compute
from services.assessment.stations import StationInfo
from shared.errors import Invalid

Kind = Literal["daily", "weekly", "monthly"]


def report_period(kind: Kind, label: str | None, today: dt.date) -> Period:
    """The period a report covers: a day, the ISO week holding a date (or `YYYY-Www`), or a month."""
    if kind == "daily":
        day = periods.parse_day(label, "period") if label else today
        return Period(day.isoformat(), day, day, "day")
    if kind == "weekly":
        if not label:
            return periods.week_of(today)
        p = periods.parse(label)
        if p.kind not in ("week", "day"):
            raise Invalid("a weekly report's period is YYYY-Www or a date in the week")
        return periods.week_of(p.start)
    if not label:
        return periods.month(f"{today:%Y-%m}")
    return periods.month(label)


async def _sums(session: AsyncSession, start: dt.date, end: dt.date, ids: list[str]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {s: {} for s in ids}
    if not ids:
        return out
    for sid, sums in (await history.period_sums(session, start, end, ids)).items():
        out[sid] = sums
    return out


def _district(per_station: dict[str, dict[str, float]]) -> dict[str, float]:
    total: Counter[str] = Counter()
    for sums in per_station.values():
        total.update(sums)
    return dict(total)


async def build(session: AsyncSession, *, kind: Kind, period: Period, known: dict[str, StationInfo],
                shown: dict[str, StationInfo], tz: str, now: dt.datetime) -> dict[str, Any]:
    """The report as JSON-able data (the CSV and XLSX are renderings of it)."""
    ids = sorted(shown)
    prev = period.previous()
    now_sums, prev_sums = await _sums(session, period.start, period.end, ids), await _sums(
        session, prev.start, prev.end, ids)
    pops = {s: shown[s].population for s in ids}
    district_pop = sum(p for p in pops.values() if p) or None
    cat = catalogue()
    items = []
    for item in cat.items:
        value = item_value(item, _district(now_sums), district_pop, period.months)
        before = item_value(item, _district(prev_sums), district_pop, prev.months)
        items.append({
            "id": item.id, "section": item.section, "name": item.name, "name_zh": item.name_zh, "unit": item.unit,
            "district": value, "previous": before,
            "trend": None if value is None or before is None else round(value - before, 4),
            "stations": {s: item_value(item, now_sums[s], pops[s], period.months) for s in ids},
        })
    scored = await compute(session, period=period, known=known)
    ranking = [{"mode": r.mode, "rank_in_mode": r.rank_in_mode, "station_id": r.station_id, "name": r.name,
                "total": r.total, "outcome": r.outcome, "process": r.process, "colour": r.colour,
                "previous_total": r.previous_total, "trend": r.trend}
               for r in scored.stations if r.station_id in shown]
    report: dict[str, Any] = {
        "kind": kind, "period": period.label, "start": period.start.isoformat(), "end": period.end.isoformat(),
        "scope": ids[0] if len(ids) == 1 and len(known) > 1 else "district", "stations": ids,
        "generated_at": now.isoformat(), "sections": cat.sections, "items": items, "ranking": ranking,
        "colours": dict(Counter(r["colour"] or "none" for r in ranking)),
    }
    if kind == "daily":
        day_board = await board_mod.board(session, day=period.start, shown=shown, tz=tz, now=now)
        report["board"] = [{"station_id": s.station_id, "theme": t.theme, "name": t.name, "target": t.target,
                            "actual": t.actual, "progress": t.progress, "colour": t.colour,
                            "overdue_tasks": ",".join(t.overdue_tasks)}
                           for s in day_board.stations for t in s.themes]
    return report


# --- renderings (CPU work: called in a worker thread) ---------------------------------------------

ITEM_HEAD = ["section", "item", "name", "name_zh", "unit", "district", "previous", "trend"]
RANK_HEAD = ["mode", "rank_in_mode", "station_id", "name", "total", "outcome", "process", "colour",
             "previous_total", "trend"]
BOARD_HEAD = ["station_id", "theme", "name", "target", "actual", "progress", "colour", "overdue_tasks"]


def _tables(report: dict[str, Any]) -> list[tuple[str, list[str], list[list[Any]]]]:
    stations = report["stations"]
    items = [[i["section"], i["id"], i["name"], i["name_zh"], i["unit"], i["district"], i["previous"], i["trend"],
              *[i["stations"][s] for s in stations]] for i in report["items"]]
    tables = [("Items", ITEM_HEAD + stations, items),
              ("Ranking", RANK_HEAD, [[r[k] for k in RANK_HEAD] for r in report["ranking"]])]
    if "board" in report:
        tables.append(("Board", BOARD_HEAD, [[b[k] for k in BOARD_HEAD] for b in report["board"]]))
    return tables


def render_csv(report: dict[str, Any]) -> bytes:
    """One CSV: a title line, then each table under a `# <table>` line; empty cells for missing values."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([f"# jiaozhi {report['kind']} report", report["period"], report["start"], report["end"],
                report["scope"]])
    for name, head, rows in _tables(report):
        w.writerow([])
        w.writerow([f"# {name}"])
        w.writerow(head)
        w.writerows([["" if v is None else v for v in row] for row in rows])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")  # BOM: spreadsheet programs then read UTF-8


FILLS = {"blue": "9DC3E6", "yellow": "FFE699", "red": "F4B183"}


def _cells(row: list[Any]) -> list[Any]:
    """A row a worksheet accepts: control characters (which openpyxl refuses) dropped from text, e.g. from an id."""
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    return [ILLEGAL_CHARACTERS_RE.sub("", v) if isinstance(v, str) else v for v in row]


def render_xlsx(report: dict[str, Any]) -> bytes:
    """A workbook with a Summary sheet and one sheet per table; colour cells are filled in their colour."""
    from openpyxl import Workbook
    from openpyxl.styles import Font, PatternFill
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    summary = wb.active
    summary.title = "Summary"
    for row in (["report", report["kind"]], ["period", report["period"]], ["from", report["start"]],
                ["to", report["end"]], ["scope", report["scope"]], ["generated_at", report["generated_at"]],
                *[[f"stations {c}", n] for c, n in sorted(report["colours"].items())]):
        summary.append(_cells(row))
    for name, head, rows in _tables(report):
        ws = wb.create_sheet(name)
        ws.append(_cells(head))
        for cell in ws[1]:
            cell.font = Font(bold=True)
        for row in rows:
            ws.append(_cells(row))
        if "colour" in head:
            col = head.index("colour") + 1
            for r in range(2, ws.max_row + 1):
                cell = ws.cell(row=r, column=col)
                if cell.value in FILLS:
                    cell.fill = PatternFill("solid", fgColor=FILLS[cell.value])
        for i, title in enumerate(head, start=1):
            ws.column_dimensions[get_column_letter(i)].width = max(10, min(40, len(str(title)) + 2))
        ws.freeze_panes = "A2"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
