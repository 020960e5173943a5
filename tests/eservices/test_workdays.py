"""Working-day clock: the packaged holiday table, due dates, pauses, table limits."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safecity.eservices import workdays
from safecity.eservices.workdays import (
    add_workdays,
    default_calendar,
    is_workday,
    local_date,
    parse_table,
    workdays_between,
)
from safecity.platform.errors import ConfigurationError, InvalidInput

CAL = default_calendar()
FIRST, LAST = date(2024, 1, 1), date(2026, 12, 31)
# A start date that leaves room before the table ends for 60 working days (< 100
# calendar days with holidays) plus three pauses of at most 21 days each.
starts = st.dates(min_value=FIRST, max_value=LAST - timedelta(days=100 + 63))
small_pauses = st.lists(
    st.tuples(st.dates(min_value=FIRST, max_value=date(2026, 9, 30)), st.integers(0, 20)),
    max_size=3,
).map(lambda ps: [(a, a + timedelta(days=k)) for a, k in ps])


def test_table_covers_three_whole_years() -> None:
    assert (CAL.first, CAL.last) == (FIRST, LAST)
    assert {d.year for d in CAL.holidays} == {2024, 2025, 2026}


@pytest.mark.parametrize(
    ("day", "weekday"),
    [
        # weekdays as stated in the State Council notices for make-up days
        (date(2024, 2, 4), 6),
        (date(2024, 5, 11), 5),
        (date(2025, 1, 26), 6),
        (date(2025, 2, 8), 5),
        (date(2025, 10, 11), 5),
        (date(2026, 1, 4), 6),
        (date(2026, 2, 14), 5),
        (date(2026, 2, 28), 5),
        (date(2026, 9, 20), 6),
        (date(2026, 10, 10), 5),
    ],
)
def test_makeup_days_match_the_notices(day: date, weekday: int) -> None:
    assert day in CAL.makeup_workdays
    assert day.weekday() == weekday
    assert is_workday(day)


def test_holidays_and_ordinary_days() -> None:
    assert not is_workday(date(2026, 10, 1))  # National Day, a Thursday
    assert not is_workday(date(2025, 1, 1))  # a Wednesday
    assert not is_workday(date(2026, 2, 23))  # Spring Festival's Monday
    assert is_workday(date(2026, 11, 26))  # an ordinary Thursday
    assert not is_workday(date(2026, 11, 28))  # an ordinary Saturday


@pytest.mark.parametrize(
    ("year", "expected"),
    [
        # Monday-Fridays - holidays falling on them + make-up weekend days, by hand
        (2024, 262 - 19 + 8),
        (2025, 261 - 18 + 5),
        (2026, 261 - 19 + 6),
    ],
)
def test_working_days_per_year(year: int, expected: int) -> None:
    days = (date(year + 1, 1, 1) - date(year, 1, 1)).days
    assert sum(is_workday(date(year, 1, 1) + timedelta(days=i)) for i in range(days)) == expected
    # (a, b] counting: the start day itself may lie before the table
    assert workdays_between(date(year - 1, 12, 31), date(year, 12, 31)) == expected


def test_due_date_skips_golden_week_and_counts_makeup_saturday() -> None:
    accepted = date(2026, 9, 30)  # Wednesday before National Day
    assert add_workdays(accepted, 1) == date(2026, 10, 8)
    assert add_workdays(accepted, 2) == date(2026, 10, 9)
    assert add_workdays(accepted, 3) == date(2026, 10, 10)  # make-up Saturday
    assert add_workdays(accepted, 4) == date(2026, 10, 12)
    assert add_workdays(accepted, 0) == accepted


def test_pause_stops_the_clock() -> None:
    accepted = date(2026, 11, 2)  # Monday
    assert add_workdays(accepted, 5) == date(2026, 11, 9)
    # supplement requested Wed 4th, received Mon 9th: 4 working days paused
    pauses = [(date(2026, 11, 4), date(2026, 11, 9))]
    assert add_workdays(accepted, 5, pauses) == date(2026, 11, 13)
    assert workdays_between(accepted, date(2026, 11, 13), pauses) == 5
    assert workdays_between(accepted, date(2026, 11, 13)) == 9


def test_local_date_is_beijing() -> None:
    assert local_date(datetime(2026, 9, 30, 23, 30, tzinfo=UTC)) == date(2026, 10, 1)
    assert local_date(datetime(2026, 9, 30, 15, 59, tzinfo=UTC)) == date(2026, 9, 30)
    with pytest.raises(InvalidInput, match="timezone-aware"):
        local_date(datetime(2026, 9, 30, 12, 0))


def test_bad_arguments() -> None:
    with pytest.raises(InvalidInput, match="n >= 0"):
        add_workdays(date(2026, 1, 5), -1)
    with pytest.raises(InvalidInput, match="before it starts"):
        add_workdays(date(2026, 1, 5), 3, [(date(2026, 1, 9), date(2026, 1, 8))])
    with pytest.raises(InvalidInput, match="before"):
        workdays_between(date(2026, 1, 9), date(2026, 1, 8))


def test_the_years_after_the_table_run_on_the_provisional_statutory_calendar() -> None:
    cal = workdays.default_calendar()
    assert not cal.is_provisional(date(2026, 12, 31))
    assert cal.is_provisional(date(2027, 1, 4))
    assert not is_workday(date(2027, 1, 1))  # New Year's Day, a Friday
    assert is_workday(date(2027, 1, 4))
    # Spring Festival 2027 (lunar new year on 6 February): Eve to the 3rd day off, with
    # the days falling on the weekend rolled over to Tuesday and Wednesday
    assert [is_workday(date(2027, 2, d)) for d in range(4, 12)] == [
        True,  # Thu 4
        False,  # Fri 5, New Year's Eve
        False,  # Sat 6
        False,  # Sun 7
        False,  # Mon 8
        False,  # Tue 9 (observed)
        False,  # Wed 10 (observed)
        True,  # Thu 11
    ]
    # a deadline across the turn of the year no longer fails
    assert add_workdays(date(2026, 12, 30), 3) == date(2027, 1, 5)
    assert workdays_between(date(2026, 12, 30), date(2027, 1, 5)) == 3


def test_beyond_the_provisional_years_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="holiday table ends 2026-12-31 and the prov"):
        add_workdays(date(2028, 12, 20), 20)
    with pytest.raises(ConfigurationError, match="provisional calendar 2028-12-31"):
        is_workday(date(2029, 1, 4))
    with pytest.raises(ConfigurationError, match="starts 2024-01-01"):
        workdays.is_workday(date(2023, 12, 29))


def test_parse_table_rejects_bad_rows() -> None:
    head = "date,kind,name\n"
    with pytest.raises(ConfigurationError, match="not a weekend"):
        parse_table(head + "2026-11-26,workday,x\n")
    with pytest.raises(ConfigurationError, match="listed twice"):
        parse_table(head + "2026-10-01,holiday,a\n2026-10-01,holiday,b\n")
    with pytest.raises(ConfigurationError, match="kind"):
        parse_table(head + "2026-10-01,vacation,a\n")
    with pytest.raises(ConfigurationError, match="contiguous"):
        parse_table(head + "2024-10-01,holiday,a\n2026-10-01,holiday,b\n")
    cal = parse_table("# comment\n" + head + "2030-10-01,holiday,a\n")
    assert (cal.first, cal.last) == (date(2030, 1, 1), date(2030, 12, 31))


@settings(max_examples=200, deadline=None)
@given(start=starts, n=st.integers(0, 60), pauses=small_pauses)
def test_round_trip(start: date, n: int, pauses: list[tuple[date, date]]) -> None:
    due = add_workdays(start, n, pauses)
    assert workdays_between(start, due, pauses) == n
    if n > 0:
        # one day earlier is not yet due
        assert workdays_between(start, due - timedelta(days=1), pauses) == n - 1


@settings(max_examples=200, deadline=None)
@given(start=starts, n=st.integers(1, 60), pauses=small_pauses)
def test_deadline_lands_on_an_unpaused_working_day(
    start: date, n: int, pauses: list[tuple[date, date]]
) -> None:
    due = add_workdays(start, n, pauses)
    assert due > start
    assert due not in CAL.holidays
    assert due.weekday() < 5 or due in CAL.makeup_workdays
    assert not any(a <= due <= b for a, b in pauses)


@settings(max_examples=100, deadline=None)
@given(day=st.sampled_from(sorted(CAL.makeup_workdays)))
def test_makeup_saturdays_and_sundays_count(day: date) -> None:
    assert day.weekday() >= 5
    assert workdays_between(day - timedelta(days=1), day) == 1
    assert add_workdays(day - timedelta(days=1), 1) == day
