"""``[calendar]``: the years the State Council has announced since the ``chinese-calendar`` package
was released, copied by the operator from the notice (``provider_node.core.workdays``).

    [[calendar.years]]
    year = 2027
    source = "国务院办公厅关于2027年部分节假日安排的通知 (国办发明电〔2026〕N号)"
    holidays = [2027-01-01, 2027-02-05, …]        # every day off: TOML dates, in that year
    workdays = [2027-02-07, …]                     # weekend make-up working days (调休)

Each year is checked as the notice must be (``workdays.AnnouncedYear``) and the years must go on
from the package's last one without a gap. A year the package knows is left to the package (the
node says so at start): once it is updated, the copy can go.
"""

from __future__ import annotations

from datetime import date

from pydantic import Field, StrictInt, field_validator, model_validator

from provider_node.config.section import Section
from provider_node.config.values import problem
from provider_node.core.workdays import AnnouncedYear, check_sequence

__all__ = ["AnnouncedYearConfig", "CalendarConfig"]


class AnnouncedYearConfig(Section):
    """One ``[[calendar.years]]`` table: one year's notice."""

    year: StrictInt
    source: str
    holidays: tuple[date, ...]
    workdays: tuple[date, ...] = ()

    def announced(self) -> AnnouncedYear:
        return AnnouncedYear(
            self.year, self.source, frozenset(self.holidays), frozenset(self.workdays)
        )

    @model_validator(mode="after")
    def _as_a_notice_must_be(self) -> AnnouncedYearConfig:
        try:
            self.announced()
        except ValueError as exc:
            raise problem(str(exc)) from None
        return self


class CalendarConfig(Section):
    """``[calendar]``: working-day years beyond the ``chinese-calendar`` package's."""

    years: tuple[AnnouncedYearConfig, ...] = Field(
        (), description="an array of tables ([[calendar.years]])"
    )

    @field_validator("years")
    @classmethod
    def _one_after_another(
        cls, years: tuple[AnnouncedYearConfig, ...]
    ) -> tuple[AnnouncedYearConfig, ...]:
        try:
            check_sequence(entry.year for entry in years)
        except ValueError as exc:
            raise problem(str(exc)) from None
        return years

    def announced(self) -> tuple[AnnouncedYear, ...]:
        return tuple(entry.announced() for entry in self.years)
