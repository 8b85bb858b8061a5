"""What a user types in, parsed, and what is shown back: the pieces every role's commands share.

The parsers are click callbacks (dates, whole numbers, comma-separated names, text that must say
something, files to read). Each mistake is one line on stderr naming the option, and exit code 2
(``UserError``), never a usage dump or a traceback. ``table``, ``moment`` and ``days_until``
shape output; ``clock`` is the commands' one source of the time.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import TypeVar

import click

from bidui_cli.errors import fail

__all__ = [
    "clock",
    "days_until",
    "iso_date",
    "moment",
    "name_list",
    "read_file",
    "required_text",
    "table",
    "whole_number",
]

_T = TypeVar("_T")
_Callback = Callable[[click.Context, click.Parameter, str | None], _T]


def clock() -> _dt.datetime:
    """Now: what decisions and signatures are dated by, and deadlines counted from (tests put a
    fixed clock here)."""
    return _dt.datetime.now(_dt.UTC)


def _shown(param: click.Parameter) -> str:
    return param.opts[0] if param.opts else param.human_readable_name


def iso_date(_ctx: click.Context, param: click.Parameter, value: str | None) -> _dt.date | None:
    """A calendar date written YYYY-MM-DD (a day in China where the regulation counts days)."""
    if value is None:
        return None
    try:
        return _dt.date.fromisoformat(value.strip())
    except ValueError:
        fail(f"{_shown(param)}: {value!r} is not a date; write it as YYYY-MM-DD, e.g. 2026-12-31")


def required_text(_ctx: click.Context, param: click.Parameter, value: str | None) -> str:
    """Text the command cannot do without (a reason, a duty): stripped, never absent or blank."""
    if value is None or not value.strip():
        missing = "is required" if value is None else "must not be blank"
        fail(f"{_shown(param)} {missing}: the node's audit log keeps it")
    return value.strip()


def whole_number(low: int, high: int) -> _Callback[int | None]:
    """A callback for a whole number from ``low`` to ``high``."""

    def parse(_ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
        if value is None:
            return None
        try:
            number = int(value.strip().replace("_", ""))
        except ValueError:
            fail(f"{_shown(param)}: {value!r} is not a whole number")
        if not low <= number <= high:
            fail(f"{_shown(param)}: {number} is not from {low:,} to {high:,}")
        return number

    return parse


def name_list(choices: Collection[str] | None = None) -> _Callback[tuple[str, ...] | None]:
    """A callback for ``a,b,c``: the names, without blanks or repeats; only ``choices`` if given."""

    def parse(
        _ctx: click.Context, param: click.Parameter, value: str | None
    ) -> tuple[str, ...] | None:
        if value is None:
            return None
        names = tuple(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
        if not names:
            fail(f"{_shown(param)}: name at least one, separated by commas")
        for name in names:
            if choices is not None and name not in choices:
                fail(f"{_shown(param)}: {name!r} is not one of {', '.join(sorted(choices))}")
        return names

    return parse


def read_file(path: Path, what: str) -> bytes:
    """The bytes of a file the user named, or one line saying why they cannot be read."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        fail(f"{what} {path} does not exist")
    except IsADirectoryError:
        fail(f"{what} {path} is a folder, not a file")
    except OSError as exc:
        fail(f"cannot read {what} {path}: {exc.strerror or exc}")


def days_until(deadline: _dt.date, today: _dt.date) -> str:
    """How a deadline stands on ``today``: ``3 days left``, ``due today``, ``2 days overdue``."""
    days = (deadline - today).days
    if days == 0:
        return "due today"
    count = f"{abs(days)} day{'s' if abs(days) != 1 else ''}"
    return f"{count} left" if days > 0 else f"{count} overdue"


def deadline(day: _dt.date, provisional: bool) -> str:
    """A deadline as shown: its date, marked when the node counted it past its working-day
    calendar (weekdays less the fixed-date holidays, recounted once the year is announced)."""
    return f"{day} (provisional)" if provisional else str(day)


def moment(instant: _dt.datetime | None) -> str:
    """An instant as the audit log keeps it, in UTC to the minute; ``-`` for none."""
    return "-" if instant is None else f"{instant.astimezone(_dt.UTC):%Y-%m-%d %H:%M} UTC"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print ``rows`` under ``headers`` in left-aligned columns, the last one left unpadded."""
    cells = [list(headers), *([str(cell) for cell in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers) - 1)]
    for row in cells:
        padded = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        click.echo("  ".join([*padded, row[-1]]).rstrip())
