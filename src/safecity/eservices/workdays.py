"""Working-day clock for statutory deadlines (法定办理时限), mainland China calendar.

Deadlines of e-service items are counted in working days (工作日): Monday to Friday,
minus public holidays (放假), plus the weekend days worked in exchange (调休上班). The
table is ours — :file:`holidays_cn.csv`, one row per holiday or make-up day, with the
State Council notice for each year in its header — so the clock never depends on a
network service. The notice for a year comes out in November or December of the year
before, so the clock runs on a *provisional* calendar for the ``PROVISIONAL_YEARS`` after
the table: the statutory holidays of 《全国年节及纪念日放假办法》 (lunar dates included)
as the ``holidays`` package computes them, with weekend rollovers but no make-up
workdays, which only the notice fixes; :meth:`HolidayCalendar.is_provisional` says when a
day falls there and a warning is logged once per year. Further out every function raises
:class:`~safecity.platform.errors.ConfigurationError` instead of guessing.

Counting convention (as in 《中华人民共和国行政许可法》: a period starts the day after
the event): ``add_workdays(start, n)`` is the n-th working day *after* ``start``;
``workdays_between(a, b)`` counts working days in the half-open interval ``(a, b]``, so
``workdays_between(s, add_workdays(s, n, p), p) == n``. A *pause* ``(first, last)`` is an
inclusive date interval during which the clock stops (supplement requested, expert
review, on-site inspection...): its working days are not counted.

Dates are local (Beijing) calendar dates: turn a stored UTC timestamp into one with
:func:`local_date` first — an application accepted at 23:30 UTC was accepted the next
day in China.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from importlib import resources
from pathlib import Path

import holidays as holiday_rules

from safecity.platform.errors import ConfigurationError, InvalidInput

log = logging.getLogger(__name__)
Pause = tuple[date, date]
# Mainland China has used UTC+8 all year since 1991: no tz database needed.
CHINA_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")
TABLE = "holidays_cn.csv"
_KINDS = ("holiday", "workday")
#: Years after the table's last one that run on the provisional (statutory) calendar.
PROVISIONAL_YEARS = 2


@lru_cache(maxsize=8)
def provisional_holidays(year: int) -> frozenset[date]:
    """Statutory days off of ``year`` (with weekend rollovers), without make-up workdays."""
    log.warning(
        "working-day clock: %d is not in %s; using the provisional statutory calendar "
        "(no make-up workdays) until the State Council notice is added",
        year,
        TABLE,
    )
    return frozenset(holiday_rules.country_holidays("CN", years=year))


@dataclass(frozen=True)
class HolidayCalendar:
    """A holiday table covering ``first`` .. ``last`` (inclusive, whole years)."""

    first: date
    last: date
    holidays: frozenset[date]
    makeup_workdays: frozenset[date]
    names: dict[date, str] = field(default_factory=dict, compare=False)

    def is_provisional(self, day: date) -> bool:
        """Whether ``day`` is past the table, on the provisional calendar."""
        self._check(day)
        return day > self.last

    def _check(self, day: date) -> None:
        if day.year > self.last.year + PROVISIONAL_YEARS:
            raise ConfigurationError(
                f"holiday table ends {self.last.isoformat()} and the provisional calendar "
                f"{self.last.year + PROVISIONAL_YEARS}-12-31; extend it "
                f"(asked about {day.isoformat()})"
            )
        if day < self.first:
            raise ConfigurationError(
                f"holiday table starts {self.first.isoformat()}; extend it "
                f"(asked about {day.isoformat()})"
            )

    def is_workday(self, day: date) -> bool:
        """Whether ``day`` is a working day (make-up weekend days count)."""
        self._check(day)
        if day > self.last:
            return day.weekday() < 5 and day not in provisional_holidays(day.year)
        if day in self.makeup_workdays:
            return True
        return day.weekday() < 5 and day not in self.holidays

    def add_workdays(self, start: date, n: int, pauses: Sequence[Pause] = ()) -> date:
        """The ``n``-th working day after ``start`` that is not paused (``n=0``: ``start``)."""
        if n < 0:
            raise InvalidInput(f"a deadline needs n >= 0 working days, got {n}")
        paused = _normalise(pauses)
        day, counted = start, 0
        while counted < n:
            day += timedelta(days=1)
            if self.is_workday(day) and not _in(paused, day):
                counted += 1
        return day

    def workdays_between(self, a: date, b: date, pauses: Sequence[Pause] = ()) -> int:
        """Working days in ``(a, b]`` outside every pause (elapsed on day ``b``)."""
        if b < a:
            raise InvalidInput(f"{b.isoformat()} is before {a.isoformat()}")
        paused = _normalise(pauses)
        self._check(b)
        count, day = 0, a
        while day < b:
            day += timedelta(days=1)
            if self.is_workday(day) and not _in(paused, day):
                count += 1
        return count


def local_date(moment: datetime) -> date:
    """The Beijing calendar date of an aware timestamp (naive ones are refused)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidInput("a timezone-aware timestamp is needed to find the local date")
    return moment.astimezone(CHINA_TZ).date()


def _normalise(pauses: Iterable[Pause]) -> list[Pause]:
    out: list[Pause] = []
    for first, last in pauses:
        if last < first:
            raise InvalidInput(
                f"pause ends ({last.isoformat()}) before it starts ({first.isoformat()})"
            )
        out.append((first, last))
    return out


def _in(pauses: Sequence[Pause], day: date) -> bool:
    return any(first <= day <= last for first, last in pauses)


def parse_table(text: str) -> HolidayCalendar:
    """Parse a holiday CSV (``date,kind,name``; ``#`` comment lines) into a calendar.

    The covered range is every whole year that has at least one row; years must be
    contiguous, a make-up workday must fall on a weekend, a date may appear once.
    """
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    reader = csv.DictReader(io.StringIO("\n".join(lines)))
    holidays: set[date] = set()
    makeup: set[date] = set()
    names: dict[date, str] = {}
    for row in reader:
        try:
            day = date.fromisoformat(row["date"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigurationError(f"holiday table: bad date in row {row!r}") from exc
        kind = row.get("kind")
        if kind not in _KINDS:
            raise ConfigurationError(f"holiday table: kind must be holiday/workday: {row!r}")
        if day in names:
            raise ConfigurationError(f"holiday table: {day.isoformat()} listed twice")
        if kind == "workday" and day.weekday() < 5:
            raise ConfigurationError(
                f"holiday table: make-up workday {day.isoformat()} is not a weekend day"
            )
        (holidays if kind == "holiday" else makeup).add(day)
        names[day] = row.get("name") or ""
    if not names:
        raise ConfigurationError("holiday table is empty")
    years = sorted({d.year for d in names})
    if years != list(range(years[0], years[-1] + 1)):
        raise ConfigurationError(f"holiday table years are not contiguous: {years}")
    return HolidayCalendar(
        first=date(years[0], 1, 1),
        last=date(years[-1], 12, 31),
        holidays=frozenset(holidays),
        makeup_workdays=frozenset(makeup),
        names=names,
    )


def load_calendar(path: Path | None = None) -> HolidayCalendar:
    """Load a holiday table; the packaged :file:`holidays_cn.csv` by default."""
    if path is None:
        text = resources.files("safecity.eservices").joinpath(TABLE).read_text("utf-8")
    else:
        text = path.read_text("utf-8")
    return parse_table(text)


@lru_cache(maxsize=1)
def default_calendar() -> HolidayCalendar:
    """The packaged mainland-China calendar (loaded once)."""
    return load_calendar()


def is_workday(day: date) -> bool:
    """Whether ``day`` is a working day in the packaged calendar."""
    return default_calendar().is_workday(day)


def add_workdays(start: date, n: int, pauses: Sequence[Pause] = ()) -> date:
    """Due date: the ``n``-th unpaused working day after ``start`` (packaged calendar)."""
    return default_calendar().add_workdays(start, n, pauses)


def workdays_between(a: date, b: date, pauses: Sequence[Pause] = ()) -> int:
    """Unpaused working days elapsed in ``(a, b]`` (packaged calendar)."""
    return default_calendar().workdays_between(a, b, pauses)
