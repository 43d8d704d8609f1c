"""Local calendar periods: a day, an ISO week, a month or any date range, and the periods around them."""
from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass

from services.assessment.inputs import MAX_YEAR, MIN_YEAR
from shared.errors import Invalid

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_WEEK = re.compile(r"^(\d{4})-W(0[1-9]|[1-4]\d|5[0-3])$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Period:
    """Local days `start` … `end` inclusive, with the label the API shows."""

    label: str
    start: dt.date
    end: dt.date
    kind: str  # day | week | month | range

    @property
    def days(self) -> int:
        """How many days the period holds."""
        return (self.end - self.start).days + 1

    @property
    def months(self) -> float:
        """The period as a number of months: each day counts 1/(days of its month); a calendar month is 1."""
        total, day = 0.0, self.start
        while day <= self.end:
            last = dt.date(day.year, day.month, calendar.monthrange(day.year, day.month)[1])
            upto = min(last, self.end)
            total += ((upto - day).days + 1) / last.day
            day = upto + dt.timedelta(days=1)
        return total

    @property
    def months_touched(self) -> list[str]:
        """The YYYY-MM months the period overlaps."""
        out, day = [], self.start.replace(day=1)
        while day <= self.end:
            out.append(f"{day:%Y-%m}")
            day = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        return out

    def previous(self) -> Period:
        """The period just before, of the same kind and length."""
        if self.kind == "month":
            return month(f"{self.start - dt.timedelta(days=1):%Y-%m}")
        if self.kind == "week":
            return week_of(self.start - dt.timedelta(days=7))
        start = self.start - dt.timedelta(days=self.days)
        return Period(_range_label(start, self.start - dt.timedelta(days=1)) if self.kind == "range" else
                      start.isoformat(), start, self.start - dt.timedelta(days=1), self.kind)

    def last_year(self) -> Period:
        """The same dates one year earlier (29 February becomes 28 February)."""
        return Period(self.label + " -1y", _minus_year(self.start), _minus_year(self.end), self.kind)


def _minus_year(day: dt.date) -> dt.date:
    try:
        return day.replace(year=day.year - 1)
    except ValueError:
        return day.replace(year=day.year - 1, day=28)


def _range_label(start: dt.date, end: dt.date) -> str:
    return f"{start.isoformat()}..{end.isoformat()}"


def month(label: str) -> Period:
    """A calendar month from `YYYY-MM`."""
    m = _MONTH.match(label)
    if not m:
        raise Invalid("period must be YYYY-MM", errors=[{"loc": ["query", "period"], "msg": "expected YYYY-MM"}])
    start = dt.date(_year(int(m[1]), "period"), int(m[2]), 1)
    return Period(label, start, start.replace(day=calendar.monthrange(start.year, start.month)[1]), "month")


def week_of(day: dt.date) -> Period:
    """The ISO week (Monday to Sunday) holding a day."""
    start = day - dt.timedelta(days=day.weekday())
    year, number, _ = start.isocalendar()
    return Period(f"{year}-W{number:02d}", start, start + dt.timedelta(days=6), "week")


def parse_day(text: str, what: str = "date") -> dt.date:
    """A YYYY-MM-DD date or a 422 problem."""
    if not _DAY.match(text or ""):
        raise Invalid(f"{what} must be YYYY-MM-DD", errors=[{"loc": ["query", what], "msg": "expected YYYY-MM-DD"}])
    try:
        day = dt.date.fromisoformat(text)
    except ValueError as exc:
        raise Invalid(f"{what} is not a calendar date", errors=[{"loc": ["query", what], "msg": str(exc)}]) from exc
    _year(day.year, what)
    return day


def _year(year: int, what: str) -> int:
    """The year, if periods may start in it (a 422 otherwise: months around year 1 or 9999 do not compute)."""
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise Invalid(f"{what} must fall between {MIN_YEAR} and {MAX_YEAR}",
                      errors=[{"loc": ["query", what], "msg": f"year outside {MIN_YEAR}-{MAX_YEAR}"}])
    return year


def parse(label: str) -> Period:
    """`YYYY-MM` (month), `YYYY-Www` (ISO week), `YYYY-MM-DD` (day) or `YYYY-MM-DD..YYYY-MM-DD` (range)."""
    if _MONTH.match(label):
        return month(label)
    if m := _WEEK.match(label):
        try:
            return week_of(dt.date.fromisocalendar(_year(int(m[1]), "period"), int(m[2]), 1))
        except ValueError as exc:
            raise Invalid(f"no such week: {label}") from exc
    if ".." in label:
        a, _, b = label.partition("..")
        return date_range(parse_day(a, "from"), parse_day(b, "until"))
    if _DAY.match(label):
        day = parse_day(label, "period")
        return Period(label, day, day, "day")
    raise Invalid("period must be YYYY-MM, YYYY-Www, YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD",
                  errors=[{"loc": ["query", "period"], "msg": "unrecognised period"}])


def date_range(start: dt.date, end: dt.date) -> Period:
    """Any range of local days, inclusive (at most ~3 years)."""
    if end < start:
        raise Invalid("the range ends before it starts")
    if (end - start).days > 1100:
        raise Invalid("a range may span at most 1100 days")
    return Period(_range_label(start, end), start, end, "range")
