"""Dates as China reckons them, for both sides of a comparison.

A requester and a node on machines with different local clocks must agree on "today": whether a
birth date lies in the future (``comparator.fields``), and on which day a working-day deadline
starts (the node's calendar, the requester's CLI). Both use China's date (Asia/Shanghai, UTC+8,
no daylight saving), never the machine's local one.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

__all__ = ["CHINA_TZ", "as_utc", "china_date", "china_today"]

CHINA_TZ = ZoneInfo("Asia/Shanghai")


def as_utc(instant: datetime) -> datetime:
    """``instant`` in UTC; ``ValueError`` for a naive datetime, which names no point in time."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError("a naive datetime has no place in time: give a timezone-aware one")
    return instant.astimezone(UTC)


def china_date(instant: datetime) -> date:
    """The calendar date in China at ``instant`` (which must be timezone-aware)."""
    return as_utc(instant).astimezone(CHINA_TZ).date()


def china_today() -> date:
    """Today's date in China, from the machine's clock."""
    return datetime.now(CHINA_TZ).date()
