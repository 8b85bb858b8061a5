"""The project's one working-day calendar: Chinese working days (articles 25 and 26).

Article 25 gives the provider **5 working days** to decide an application; article 26 gives a
requester 3 working days to report a doubtful result and the provider 5 to answer it. A working
day is a day the State Council's calendar has offices open: Monday to Friday except public holidays,
plus the weekend make-up working days (调休) announced each year. The dates come from the maintained
``chinese-calendar`` package, which knows only the years the State Council had announced when it
was released, and from the operator for the years announced since (``announce``: the node's
``[[calendar.years]]``, copied from the State Council's notice, each naming it). A date outside
them raises ``CalendarRangeError`` (naming the supported years) rather than guessing from
weekdays, because a guessed deadline could fall inside an unannounced holiday.

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
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

# The package ships no type information; only ``constants`` (its data tables) is used.
from chinese_calendar import constants as _calendar  # type: ignore[import-untyped]

from comparator.china_time import CHINA_TZ, as_utc, china_date
from provider_node.core.errors import CalendarRangeError

__all__ = [
    "CHINA_TZ",
    "AnnouncedYear",
    "CalendarRangeError",
    "Deadline",
    "add_working_days",
    "announce",
    "announced_years",
    "as_utc",
    "calendar_end",
    "check_sequence",
    "china_date",
    "china_midnight",
    "is_working_day",
    "package_years",
    "supported_years",
    "working_deadline",
]

#: The time zone every calendar date of the regulation is read in.

#: More working days than any deadline of the regulation asks for; a larger count is a bug.
_MAX_WORKING_DAYS = 366

#: The statutory holidays on fixed calendar dates (全国年节及纪念日放假办法, 2024 revision, in force
#: from 2025): New Year's Day, 1–2 May, 1–3 October. The rest (Spring Festival, Qingming, Dragon
#: Boat, Mid-Autumn) move with the lunar calendar, and the State Council adds bridge days and
#: make-up working days each year: a year it has not announced can only be guessed.
FIXED_DATE_HOLIDAYS = frozenset({(1, 1), (5, 1), (5, 2), (10, 1), (10, 2), (10, 3)})


@dataclass(frozen=True)
class Deadline:
    """The last day on which something is on time. ``provisional``: counted in part over a year
    the calendar does not know yet, as weekdays less the fixed-date statutory holidays, so it is
    to be recomputed once that year is announced (``working_deadline`` again)."""

    day: date
    provisional: bool = False


@dataclass(frozen=True)
class AnnouncedYear:
    """A year the ``chinese-calendar`` package does not know yet, as the State Council announced
    it: its public holidays on weekdays or weekends alike, and its weekend make-up working days.
    ``source`` names the notice (e.g. 国办发明电〔2026〕N号) so a deadline can be traced to it."""

    year: int
    source: str
    holidays: frozenset[date]
    workdays: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        """``ValueError`` for a notice this cannot be: no source, no holiday, a date outside
        the year, a day both a holiday and a working day, a make-up working day on a weekday."""
        if not self.source.strip():
            raise ValueError("name the State Council notice the dates come from (source)")
        if not self.holidays:
            raise ValueError(f"{self.year} has no public holiday: every announced year has some")
        stray = sorted(d for d in self.holidays | self.workdays if d.year != self.year)
        if stray:
            raise ValueError(f"{stray[0].isoformat()} is not in {self.year}")
        both = sorted(self.holidays & self.workdays)
        if both:
            raise ValueError(f"{both[0].isoformat()} is both a holiday and a working day")
        weekdays = sorted(d for d in self.workdays if d.weekday() < 5)
        if weekdays:
            raise ValueError(
                f"make-up working day {weekdays[0].isoformat()} is a weekday "
                "(make-up working days are Saturdays and Sundays)"
            )


# The operator's announced years, by year (``announce``); one calendar per process, like the
# package's own tables.
_announced: dict[int, AnnouncedYear] = {}


@functools.cache
def package_years() -> tuple[int, int]:
    """The first and last year (inclusive) whose holidays and make-up days the package knows."""
    years = [day.year for day in _calendar.holidays]
    return min(years), max(years)


def supported_years() -> tuple[int, int]:
    """The first and last year (inclusive) the calendar knows: the package's, then announced."""
    first, last = package_years()
    return first, max((last, *_announced))


def calendar_end() -> datetime:
    """The instant the calendar runs out: China midnight after the last day it knows."""
    return china_midnight(date(supported_years()[1] + 1, 1, 1))


def announced_years() -> tuple[AnnouncedYear, ...]:
    """The years added by ``announce``, in order."""
    return tuple(_announced[year] for year in sorted(_announced))


def announce(years: Iterable[AnnouncedYear]) -> tuple[int, ...]:
    """Use ``years`` (replacing any announced before) for the years after the package's last;
    return the years left out because the package knows them (it was updated since: the
    operator's copy is no longer needed). ``ValueError`` (``check_sequence``) for a gap or a
    repeat."""
    given = sorted(years, key=lambda announced: announced.year)
    check_sequence(announced.year for announced in given)
    known = package_years()[1]
    _announced.clear()
    _announced.update((a.year, a) for a in given if a.year > known)
    return tuple(announced.year for announced in given if announced.year <= known)


def check_sequence(years: Iterable[int]) -> None:
    """``ValueError`` unless the years after the package's last follow it one after another,
    without a gap (a year in it would be guessed) or a repeat."""
    known = package_years()[1]
    expected = known + 1
    for year in sorted(year for year in years if year > known):
        if year != expected:
            raise ValueError(
                f"{year} cannot follow: the calendar goes on from {expected} (the "
                f"chinese-calendar package knows up to {known}), one year after another"
            )
        expected += 1


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
            "once the State Council announces that year, add it to the node's [[calendar.years]] "
            "or update the chinese-calendar package"
        )
    announced = _announced.get(day.year)
    holidays = announced.holidays if announced else _calendar.holidays
    workdays = announced.workdays if announced else _calendar.workdays
    if day in workdays:  # a weekend make-up working day (调休)
        return True
    return day.weekday() < 5 and day not in holidays


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


def working_deadline(start: datetime | date, n: int) -> Deadline:
    """``add_working_days(start, n)`` where the calendar knows every day counted; past its end,
    days are counted provisionally (Monday to Friday, less ``FIXED_DATE_HOLIDAYS``) and the
    deadline says so. A right to apply or to report is never refused because a holiday table has
    not caught up with the State Council. ``CalendarRangeError`` only for a start before the
    first year the calendar knows."""
    try:
        return Deadline(add_working_days(start, n))
    except CalendarRangeError:
        day = china_date(start) if isinstance(start, datetime) else start
        if day.year < supported_years()[0]:
            raise
    last = supported_years()[1]
    counted = 0
    while counted < n:
        day += timedelta(days=1)
        if day.year <= last:
            counted += is_working_day(day)
        elif day.weekday() < 5 and (day.month, day.day) not in FIXED_DATE_HOLIDAYS:
            counted += 1
    return Deadline(day, provisional=True)
