"""``bidui provider calendar``: which years the node's working-day calendar knows, where each comes
from, when it runs out, and (``--from DATE``) the deadlines a day would give.

An operator checks here, after adding a ``[[calendar.years]]`` copy of the State Council's notice
or updating ``chinese-calendar``, what ``serve`` will count with, before restarting it.
"""

from __future__ import annotations

from datetime import date, datetime
from importlib.metadata import version
from pathlib import Path

import click

from bidui_cli import terminal
from bidui_cli.errors import fail
from bidui_cli.options import config_option
from provider_node.config import ConfigError, load_config
from provider_node.core.workdays import (
    CalendarRangeError,
    add_working_days,
    announce,
    announced_years,
    calendar_end,
    package_years,
    supported_years,
)

__all__ = ["calendar"]

# The regulation's deadlines in working days: article 25 (a decision on an application) and
# article 26 (reporting a doubted result, and answering the report).
_DEADLINES = ((3, "article 26: reporting a doubted result"), (5, "articles 25 and 26: deciding"))


@click.command()
@config_option()
@click.option(
    "--from",
    "start",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    metavar="YYYY-MM-DD",
    help="Also show the 3- and 5-working-day deadlines counted from this day (China time).",
)
def calendar(config_path: Path, start: datetime | None) -> None:
    """The working-day calendar the node counts deadlines with (articles 25 and 26)."""
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        fail(str(exc))
    now = terminal.clock()
    needless = announce(config.calendar.announced())  # as serve does
    deadlines: list[str] = []
    if start is not None:
        day: date = start.date()
        for n, what in _DEADLINES:
            try:
                deadlines.append(
                    f"{n} working days from {day}: {add_working_days(day, n)}  ({what})"
                )
            except CalendarRangeError as exc:
                fail(str(exc))
    first, last = supported_years()
    known = package_years()[1]
    click.echo(f"working-day calendar: {first}–{last}")
    click.echo(f"  {first}–{known}  chinese-calendar {version('chinese-calendar')}")
    for year in needless:
        click.echo(f"  ({year} in [[calendar.years]] is not used: the package knows it; remove it)")
    for announced in announced_years():
        click.echo(
            f"  {announced.year}       {config.path} [[calendar.years]]: {announced.source} "
            f"({len(announced.holidays)} days off, {len(announced.workdays)} make-up working days)"
        )
    end = calendar_end()
    click.echo(
        f"runs out after {last}-12-31 (China time), {max((end - now).days, 0)} days from now: "
        "an application whose deadline falls later is refused"
    )
    for line in deadlines:
        click.echo(line)
