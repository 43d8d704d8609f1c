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
from shared.i18n import Lang, format_value, label

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
        "station_names": {s: shown[s].name or s for s in ids},
        "colours": dict(Counter(r["colour"] or "none" for r in ranking)),
    }
    if kind == "daily":
        day_board = await board_mod.board(session, day=period.start, shown=shown, tz=tz, now=now)
        report["board"] = [{"station_id": s.station_id, "theme": t.theme, "name": t.name, "target": t.target,
                            "actual": t.actual, "progress": t.progress, "colour": t.colour,
                            "overdue_tasks": ",".join(t.overdue_tasks)}
                           for s in day_board.stations for t in s.themes]
    return report


# --- labels and renderings (CPU work: called in a worker thread) ------------------------------------------

def localise(report: dict[str, Any], lang: Lang) -> dict[str, Any]:
    """The report with `…_label` texts beside its codes in the reader's language (codes and ISO dates kept)."""
    out = dict(report, lang=lang, section_labels={k: label("report_section", k, lang) for k in report["sections"]})
    out["items"] = [dict(i, label=label("report_item", i["id"], lang), section_label=label(
        "report_section", i["section"], lang), unit_label=label("unit", i["unit"], lang)) for i in report["items"]]
    out["ranking"] = [dict(r, mode_label=label("mode", r["mode"], lang),
                           colour_label=label("colour", r["colour"], lang)) for r in report["ranking"]]
    if "board" in report:
        out["board"] = [dict(b, theme_label=label("board_theme", b["theme"], lang),
                             colour_label=label("colour", b["colour"], lang)) for b in report["board"]]
    return out


ITEM_HEAD = ["section", "item", "name", "name_zh", "unit", "district", "previous", "trend"]
RANK_HEAD = ["mode", "rank_in_mode", "station_id", "name", "total", "outcome", "process", "colour",
             "previous_total", "trend"]
BOARD_HEAD = ["station_id", "theme", "name", "target", "actual", "progress", "colour", "overdue_tasks"]
#: the reader's form (zh-CN): labels for codes, one name column, station names as column heads
ITEM_HEAD_ZH = ["section", "item", "name", "unit", "district", "previous", "trend"]
RANK_HEAD_ZH = ["mode", "rank_in_mode", "station", "total", "outcome", "process", "colour", "previous_total", "trend"]
BOARD_HEAD_ZH = ["station", "theme", "target", "actual", "progress", "colour", "overdue_tasks"]
LABELLED = {"mode": "mode", "colour": "colour", "theme": "board_theme"}


def _tables(report: dict[str, Any], lang: Lang = "en") -> list[tuple[str, list[str], list[list[Any]]]]:
    """(sheet, head, rows) per table: `en` the stable machine form (codes, key headers), else the reader's form."""
    stations = report["stations"]
    if lang == "en":
        items = [[i["section"], i["id"], i["name"], i["name_zh"], i["unit"], i["district"], i["previous"],
                  i["trend"], *[i["stations"][s] for s in stations]] for i in report["items"]]
        tables = [("Items", ITEM_HEAD + stations, items),
                  ("Ranking", RANK_HEAD, [[r[k] for k in RANK_HEAD] for r in report["ranking"]])]
        if "board" in report:
            tables.append(("Board", BOARD_HEAD, [[b[k] for k in BOARD_HEAD] for b in report["board"]]))
        return tables
    names = report.get("station_names", {})

    def row(record: dict[str, Any], keys: list[str]) -> list[Any]:
        return [names.get(record["station_id"], record["station_id"]) if k == "station" else
                label(LABELLED[k], record[k], lang) if k in LABELLED else record[k] for k in keys]

    head = [label("report_column", k, lang) for k in ITEM_HEAD_ZH] + [names.get(s, s) for s in stations]
    items = [[label("report_section", i["section"], lang), i["id"], label("report_item", i["id"], lang),
              label("unit", i["unit"], lang), i["district"], i["previous"], i["trend"],
              *[i["stations"][s] for s in stations]] for i in report["items"]]
    tables = [(label("report_sheet", "items", lang), head, items),
              (label("report_sheet", "ranking", lang), [label("report_column", k, lang) for k in RANK_HEAD_ZH],
               [row(r, RANK_HEAD_ZH) for r in report["ranking"]])]
    if "board" in report:
        tables.append((label("report_sheet", "board", lang), [label("report_column", k, lang) for k in BOARD_HEAD_ZH],
                       [row(b, BOARD_HEAD_ZH) for b in report["board"]]))
    return tables  # type: ignore[return-value]


def _summary(report: dict[str, Any], lang: Lang) -> list[list[Any]]:
    if lang == "en":
        return [["report", report["kind"]], ["period", report["period"]], ["from", report["start"]],
                ["to", report["end"]], ["scope", report["scope"]], ["generated_at", report["generated_at"]],
                *[[f"stations {c}", n] for c, n in sorted(report["colours"].items())]]
    col = lambda key: label("report_column", key, lang)  # noqa: E731
    names = report.get("station_names", {})
    return [[col("report"), label("report_kind", report["kind"], lang)], [col("period"), report["period"]],
            [col("from"), format_value(dt.date.fromisoformat(report["start"]), lang)],
            [col("to"), format_value(dt.date.fromisoformat(report["end"]), lang)],
            [col("scope"), names.get(report["scope"], label("report_column", "district", lang)
                                      if report["scope"] == "district" else report["scope"])],
            [col("generated_at"), format_value(dt.datetime.fromisoformat(report["generated_at"]), lang)],
            *[[col("stations_colour").format(colour=label("colour", c, lang)), n]
              for c, n in sorted(report["colours"].items())]]


def render_csv(report: dict[str, Any], lang: Lang = "en") -> bytes:
    """One CSV: a title line, then each table under a `# <table>` line; empty cells for missing values.
    UTF-8 with a BOM (Excel then reads the Chinese); `en` is the stable machine form, zh-CN the reader's."""
    buf = io.StringIO()
    w = csv.writer(buf)
    kind = report["kind"]
    title = f"# jiaozhi {kind} report" if lang == "en" else f"# 交治融合 {label('report_kind', kind, lang)}"
    w.writerow([title, report["period"], report["start"], report["end"], report["scope"]])
    for name, head, rows in _tables(report, lang):
        w.writerow([])
        w.writerow([f"# {name}"])
        w.writerow(head)
        w.writerows([["" if v is None else format_value(v, lang) for v in row] for row in rows])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")  # BOM: spreadsheet programs then read UTF-8


FILLS = {"blue": "9DC3E6", "yellow": "FFE699", "red": "F4B183"}


def _cells(row: list[Any]) -> list[Any]:
    """A row a worksheet accepts: control characters (which openpyxl refuses) dropped from text, e.g. from an id."""
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    return [ILLEGAL_CHARACTERS_RE.sub("", v) if isinstance(v, str) else v for v in row]


def render_xlsx(report: dict[str, Any], lang: Lang = "en") -> bytes:
    """A workbook with a summary sheet and one sheet per table (names and headers in the reader's language;
    numbers stay numbers); colour cells are filled in their colour."""
    from openpyxl import Workbook
    from openpyxl.styles import Font, PatternFill
    from openpyxl.utils import get_column_letter

    fills = {label("colour", code, lang): rgb for code, rgb in FILLS.items()} | FILLS
    colour_head = {"colour", label("report_column", "colour", lang)}
    wb = Workbook()
    summary = wb.active
    summary.title = label("report_sheet", "summary", lang) or "Summary"
    for row in _summary(report, lang):
        summary.append(_cells(row))
    for name, head, rows in _tables(report, lang):
        ws = wb.create_sheet(name)
        ws.append(_cells(head))
        for cell in ws[1]:
            cell.font = Font(bold=True)
        for row in rows:
            ws.append(_cells(row))
        if colour_head & set(head):
            col = next(i for i, h in enumerate(head) if h in colour_head) + 1
            for r in range(2, ws.max_row + 1):
                cell = ws.cell(row=r, column=col)
                if cell.value in fills:
                    cell.fill = PatternFill("solid", fgColor=fills[cell.value])
        for i, title in enumerate(head, start=1):
            ws.column_dimensions[get_column_letter(i)].width = max(10, min(40, 2 * len(str(title)) + 2))
        ws.freeze_panes = "A2"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
