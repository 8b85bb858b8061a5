"""How a discrepancy report (article 26) is shown, alike to the department that filed it and to
the operator who answers it: its standing against the deadline, and the doubted positions.
"""

from __future__ import annotations

import datetime as _dt
from typing import Protocol

from bidui_cli.terminal import days_until
from comparator.china_time import china_date

__all__ = ["Answerable", "positions_text", "standing"]


class Answerable(Protocol):
    """A report as the node keeps it, or as the SDK returns it."""

    @property
    def answer_deadline(self) -> _dt.date: ...

    @property
    def answered_at(self) -> _dt.datetime | None: ...


def standing(report: Answerable, today: _dt.date) -> str:
    """Days left or overdue while pending; whether the answer came in time once answered."""
    if report.answered_at is None:
        return f"answer {days_until(report.answer_deadline, today)}"
    late = (china_date(report.answered_at) - report.answer_deadline).days
    return "answered on time" if late <= 0 else f"answered {late} day{'s' if late > 1 else ''} late"


def positions_text(positions: list[int] | tuple[int, ...], shown: int = 12) -> str:
    """``0, 4, 7`` — the first ``shown`` of them, then how many more."""
    text = ", ".join(str(p) for p in positions[:shown])
    more = len(positions) - shown
    return text + (f" and {more:,} more" if more > 0 else "")
