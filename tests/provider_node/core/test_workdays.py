"""The working-day calendar on real dates: holidays skipped, make-up days (调休) counted, the
submission day never counted, China time first, and no guessing outside the known years."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from provider_node.core import errors
from provider_node.core.workdays import (
    CalendarRangeError,
    add_working_days,
    china_date,
    china_midnight,
    is_working_day,
    supported_years,
)
from provider_node.transport import status

SHANGHAI = timezone(timedelta(hours=8))


def test_national_day_2025_spans_holidays_and_make_up_days() -> None:
    # Mon 2025-09-29: day 1 is Tue 09-30; Oct 1-8 are holidays; Thu 10-09 and Fri 10-10 are days
    # 2 and 3; Saturday 10-11 is a make-up working day (day 4); Monday 10-13 is day 5.
    submitted = datetime(2025, 9, 29, 10, 0, tzinfo=SHANGHAI)
    assert add_working_days(submitted, 5) == date(2025, 10, 13)
    assert [add_working_days(submitted, n) for n in (1, 2, 3, 4)] == [
        date(2025, 9, 30),
        date(2025, 10, 9),
        date(2025, 10, 10),
        date(2025, 10, 11),
    ]
    assert add_working_days(submitted, 3) == date(2025, 10, 10)  # article 26's 3 days


def test_make_up_sunday_counts_when_submitted_on_the_weekend() -> None:
    # Sat 2025-09-27: Sunday 09-28 is a make-up working day, so it is day 1.
    assert add_working_days(date(2025, 9, 27), 1) == date(2025, 9, 28)
    assert add_working_days(date(2025, 9, 27), 5) == date(2025, 10, 10)


def test_submission_day_never_counts() -> None:
    # Submitted on a working day (Tue 2025-09-30) or a holiday (Wed 2025-10-01): the same result,
    # because the first working day after either is Thu 10-09.
    assert add_working_days(date(2025, 9, 30), 1) == date(2025, 10, 9)
    assert add_working_days(date(2025, 10, 1), 1) == date(2025, 10, 9)
    assert add_working_days(date(2025, 10, 8), 1) == date(2025, 10, 9)


def test_spring_festival_2026() -> None:
    # Thu 2026-02-12: Fri 02-13 is day 1, Saturday 02-14 is a make-up day (day 2), Feb 15-23 are
    # the Spring Festival holidays, then Tue 02-24, Wed 02-25, Thu 02-26 are days 3-5.
    assert add_working_days(date(2026, 2, 12), 5) == date(2026, 2, 26)
    assert is_working_day(date(2026, 2, 14))  # Saturday, 调休
    assert not is_working_day(date(2026, 2, 16))  # Monday, 春节
    # A plain weekend still rests: Sat 2026-03-07 is not a working day.
    assert not is_working_day(date(2026, 3, 7))
    assert is_working_day(date(2026, 3, 9))


def test_instant_is_read_in_china_time_first() -> None:
    # 2025-09-28T16:30Z is Monday 2025-09-29 00:30 in China. Read as a UTC date it would be the
    # make-up Sunday 09-28 and give 10-11.
    submitted = datetime(2025, 9, 28, 16, 30, tzinfo=UTC)
    assert china_date(submitted) == date(2025, 9, 29)
    assert add_working_days(submitted, 5) == date(2025, 10, 13)
    assert add_working_days(date(2025, 9, 28), 5) == date(2025, 10, 11)
    # One second before China midnight is still Sunday.
    assert china_date(datetime(2025, 9, 28, 15, 59, 59, tzinfo=UTC)) == date(2025, 9, 28)


def test_china_midnight_is_utc_16_00_the_day_before() -> None:
    assert china_midnight(date(2025, 10, 13)) == datetime(2025, 10, 12, 16, 0, tzinfo=UTC)
    assert china_midnight(date(2025, 10, 13)).tzinfo is UTC


def test_naive_instants_and_bad_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        add_working_days(datetime(2025, 9, 29, 10, 0), 5)
    for bad in (0, -1, 367, True):
        with pytest.raises(ValueError, match="whole number"):
            add_working_days(date(2025, 9, 29), bad)
    with pytest.raises(TypeError):
        is_working_day(datetime(2025, 9, 29, tzinfo=UTC))


def test_years_the_package_does_not_know_are_an_error_not_a_guess() -> None:
    first, last = supported_years()
    assert first <= 2025 < 2026 <= last
    with pytest.raises(CalendarRangeError) as caught:
        add_working_days(date(last + 1, 3, 2), 5)
    assert f"{first}–{last}" in str(caught.value)
    with pytest.raises(CalendarRangeError):
        is_working_day(date(first - 1, 6, 1))
    # Counting out of the last known year is refused too, not extrapolated from weekdays.
    with pytest.raises(CalendarRangeError, match=f"{last + 1}-01-01"):
        add_working_days(date(last, 12, 28), 5)


def test_calendar_range_error_is_the_nodes_fault_and_a_failed_precondition() -> None:
    error = CalendarRangeError("outside")
    assert isinstance(error, errors.NodeError)
    assert error.outcome == "failed"
    assert status.status_code(error).name == "FAILED_PRECONDITION"
