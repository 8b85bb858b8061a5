"""Years announced after the ``chinese-calendar`` release (``[[calendar.years]]``): the operator's
copy of the State Council's notice extends the working-day calendar, is checked as a notice must
be, never leaves a gap, and gives way to the package once the package knows the year.

The year used is the one after the package's last (2027 with chinese-calendar 1.11), with a
made-up notice: January 1-7 off, and the first weekend day after them a make-up working day.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from provider_node.config import ConfigError, load_config
from provider_node.core.workdays import (
    AnnouncedYear,
    CalendarRangeError,
    add_working_days,
    announce,
    announced_years,
    calendar_end,
    china_midnight,
    is_working_day,
    package_years,
    supported_years,
)
from provider_node.setup.runtime import use_calendar
from tests.provider_node.config.test_config import EXAMPLE

SHANGHAI = timezone(timedelta(hours=8))
LAST = package_years()[1]
NEXT = LAST + 1
HOLIDAYS = frozenset(date(NEXT, 1, day) for day in range(1, 8))
MAKE_UP = next(d for d in (date(NEXT, 1, 8) + timedelta(n) for n in range(7)) if d.weekday() >= 5)
NOTICE = AnnouncedYear(NEXT, "国办发明电〔示例〕1号", HOLIDAYS, frozenset({MAKE_UP}))


def notice_toml(year: int = NEXT, **lines: str) -> str:
    fields = {
        "year": str(year),
        "source": '"国办发明电〔示例〕1号"',
        "holidays": "[" + ", ".join(d.isoformat() for d in sorted(HOLIDAYS)) + "]",
        "workdays": f"[{MAKE_UP.isoformat()}]",
    } | lines
    return "\n[[calendar.years]]\n" + "".join(f"{k} = {v}\n" for k, v in fields.items() if v)


@pytest.fixture(autouse=True)
def package_calendar_only() -> Iterator[None]:
    """Every test starts and ends with the package's calendar alone (it is one per process)."""
    announce(())
    yield
    announce(())


def test_an_announced_year_skips_its_holidays_and_counts_its_make_up_day() -> None:
    with pytest.raises(CalendarRangeError, match=r"\[\[calendar.years\]\]"):
        add_working_days(date(LAST, 12, 31), 5)
    assert announce([NOTICE]) == ()
    assert supported_years()[1] == NEXT
    assert announced_years() == (NOTICE,)
    assert calendar_end() == china_midnight(date(NEXT + 1, 1, 1))
    assert not any(is_working_day(d) for d in HOLIDAYS)
    assert is_working_day(MAKE_UP)
    # After Dec 31: Jan 1-7 off; from Jan 8 the weekdays and the make-up day are working days.
    days = (date(NEXT, 1, 8) + timedelta(n) for n in range(14))
    working = [d for d in days if d.weekday() < 5 or d == MAKE_UP]
    submitted = datetime(LAST, 12, 31, 10, 0, tzinfo=SHANGHAI)
    assert add_working_days(submitted, 5) == working[4]
    assert add_working_days(submitted, 1) == date(NEXT, 1, 8)
    # The year after is not known: still an error, not a guess.
    with pytest.raises(CalendarRangeError, match=f"{NEXT + 1}-01-01"):
        add_working_days(date(NEXT, 12, 31), 1)


def test_years_must_follow_the_package_without_a_gap_and_the_package_wins() -> None:
    later = AnnouncedYear(NEXT + 1, "x", frozenset({date(NEXT + 1, 1, 1)}))
    with pytest.raises(ValueError, match=f"{NEXT + 1} cannot follow: the calendar goes on from"):
        announce([later])
    with pytest.raises(ValueError, match="cannot follow"):
        announce([NOTICE, NOTICE])
    assert announce([later, NOTICE]) == ()
    assert supported_years()[1] == NEXT + 1
    # A copy of a year the package knows (it was updated since) is left out and reported.
    known = AnnouncedYear(LAST, "x", frozenset({date(LAST, 1, 1)}))
    assert announce([known]) == (LAST,)
    assert announced_years() == ()
    assert is_working_day(date(LAST, 1, 1)) is False  # the package's New Year's Day


@pytest.mark.parametrize(
    ("source", "holidays", "workdays", "message"),
    [
        (" ", HOLIDAYS, (), "name the State Council notice"),
        ("x", (), (), "has no public holiday"),
        ("x", {date(NEXT + 1, 1, 1)}, (), f"{NEXT + 1}-01-01 is not in {NEXT}"),
        ("x", HOLIDAYS, {date(NEXT, 1, 2)}, "both a holiday and a working day"),
        ("x", HOLIDAYS, {date(NEXT, 1, 8) + timedelta(n) for n in range(7)}, "is a weekday"),
    ],
)
def test_a_notice_is_checked_as_a_notice_must_be(
    source: str, holidays: set[date], workdays: set[date], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        AnnouncedYear(NEXT, source, frozenset(holidays), frozenset(workdays))


def write(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(EXAMPLE + extra, encoding="utf-8")
    return path


def test_node_toml_carries_the_announced_years(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, notice_toml()))
    assert config.calendar.announced() == (NOTICE,)
    assert load_config(write(tmp_path, "")).calendar.announced() == ()


def test_node_toml_problems_name_the_year_and_the_key(tmp_path: Path) -> None:
    text = (
        notice_toml(source='" "')
        + notice_toml(NEXT + 1, holidays="[2000-01-01]", color='"red"')
        + notice_toml(NEXT + 2, holidays='"every sunday"')
    )
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    lines = [line.split(": ", 1)[1] for line in caught.value.problems]
    assert lines == [
        f"calendar.years[{NEXT}]: name the State Council notice the dates come from (source)",
        f"calendar.years[{NEXT + 1}].color: unknown key (expected one of: year, source, holidays,"
        " workdays)",
        f"calendar.years[{NEXT + 2}].holidays: must be a list",
    ]
    gap = notice_toml(NEXT + 1, holidays=f"[{NEXT + 1}-01-01]", workdays="")
    with pytest.raises(ConfigError, match=rf"calendar.years: {NEXT + 1} cannot follow"):
        load_config(write(tmp_path, gap))


def test_the_node_warns_of_a_calendar_about_to_run_out_and_of_a_needless_copy(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def warnings(extra: str, now: datetime) -> list[str]:
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="provider_node.setup.runtime"):
            use_calendar(load_config(write(tmp_path, extra)), now)
        return [record.getMessage() for record in caplog.records]

    early, late = (datetime(LAST, month, 1, tzinfo=SHANGHAI) for month in (1, 12))
    assert warnings("", early) == []
    [running_out] = warnings("", late)
    assert f"runs out in 31 days (it knows dates up to {LAST}-12-31)" in running_out
    assert f"announces {NEXT}, add it to [[calendar.years]]" in running_out
    assert warnings(notice_toml(), late) == []
    copy = notice_toml(LAST, holidays=f"[{LAST}-01-01]", workdays="")
    [needless, _] = warnings(copy, late)
    assert f"[[calendar.years]] {LAST} is known to the chinese-calendar package now" in needless
