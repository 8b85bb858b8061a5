"""The project's one working-day calendar: Chinese working days (articles 25 and 26).

Article 25 gives the provider **5 working days** to decide an application; article 26 gives a
requester 3 working days to report a doubtful result and the provider 5 to answer it. A working
day is a day the State Council's calendar has offices open: Monday to Friday except public holidays,
plus the weekend make-up working days (调休) announced each year. The dates come from the maintained
``chinese-calendar`` package, which knows only the years the State Council has announced:
a date outside them raises ``CalendarRangeError`` (naming the supported years) rather than guessing
from weekdays, because a guessed deadline could fall inside an unannounced holiday.

How days are counted (``add_working_days``)::

    submitted 2025-09-29 (Mon, 10:00 China time) — the submission day itself is day 0
      09-30 Tue          working        day 1
      10-01 … 10-08      National Day   (holidays)
      10-09 Thu          working        day 2
      10-10 Fri          working        day 3
      10-11 Sat          调休 make-up   day 4
      10-13 Mon          working        day 5  -> the decision deadline; a decision that day is
                                                   on time, the next day it is overdue

An instant is first converted to China time (Asia/Shanghai, UTC+8, no daylight saving since 1991),
so a submission at 2025-09-28T16:30Z is one made on Monday 2025-09-29 in China.
"""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# The package ships no type information; only ``constants`` (its data tables) is used.
from chinese_calendar import constants as _calendar  # type: ignore[import-untyped]

from provider_node.errors import CalendarRangeError

__all__ = [
    "CHINA_TZ",
    "CalendarRangeError",
    "add_working_days",
    "as_utc",
    "china_date",
    "china_midnight",
    "is_working_day",
    "supported_years",
]

#: The time zone every calendar date of the regulation is read in.
CHINA_TZ = ZoneInfo("Asia/Shanghai")

#: More working days than any deadline of the regulation asks for; a larger count is a bug.
_MAX_WORKING_DAYS = 366


@functools.cache
def supported_years() -> tuple[int, int]:
    """The first and last year (inclusive) whose holidays and make-up days the package knows."""
    years = [day.year for day in _calendar.holidays]
    return min(years), max(years)


def as_utc(instant: datetime) -> datetime:
    """``instant`` in UTC; ``ValueError`` for a naive datetime, which names no point in time."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError("a naive datetime has no place in time: give a timezone-aware one")
    return instant.astimezone(UTC)


def china_date(instant: datetime) -> date:
    """The calendar date in China at ``instant`` (which must be timezone-aware)."""
    return as_utc(instant).astimezone(CHINA_TZ).date()


def china_midnight(day: date) -> datetime:
    """The instant (in UTC) at which ``day`` starts in China."""
    return datetime.combine(day, time(), tzinfo=CHINA_TZ).astimezone(UTC)


def is_working_day(day: date) -> bool:
    """True if offices are open in China on ``day``; ``CalendarRangeError`` outside the known years.

    ``day`` is a calendar date already read in China; give ``china_date(instant)`` for an instant.
    """
    if isinstance(day, datetime):
        raise TypeError("give a date (use china_date(instant) for an instant)")
    first, last = supported_years()
    if not first <= day.year <= last:
        raise CalendarRangeError(
            f"{day.isoformat()} is outside the working-day calendar, which covers {first}–{last}: "
            "update the chinese-calendar package once the State Council announces that year"
        )
    if day in _calendar.workdays:  # a weekend make-up working day (调休)
        return True
    return day.weekday() < 5 and day not in _calendar.holidays


def add_working_days(start: datetime | date, n: int) -> date:
    """The date ``n`` working days after ``start``: the day the ``n``-th working day falls on.

    ``start`` is an aware instant (converted to China time first) or a date already read in China.
    The start day itself never counts, whether or not it is a working day: the first working day
    *after* it is day 1. So ``add_working_days(submitted_at, 5)`` is article 25's decision deadline,
    the last day on which a decision is on time. Raises ``CalendarRangeError`` when ``start`` or any
    day counted lies outside ``supported_years()``, and ``ValueError`` unless ``1 <= n <= 366``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= _MAX_WORKING_DAYS:
        raise ValueError(f"n must be a whole number of working days from 1 to {_MAX_WORKING_DAYS}")
    day = china_date(start) if isinstance(start, datetime) else start
    is_working_day(day)  # the start must lie in the known years too
    counted = 0
    while counted < n:
        day += timedelta(days=1)
        if is_working_day(day):
            counted += 1
    return day
