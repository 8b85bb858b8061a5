"""Validation of the fields of an application and of a decision, each failure named.

Every value here may come from the network (a requester's application) or from an operator: a bad
one raises ``InvalidRequestError`` (INVALID_ARGUMENT) with a message naming the field, never a
database error. Lists of names come back sorted and without repeats, as the store keeps them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime

from provider_node.config.values import KEY_NAME_RE
from provider_node.core import errors
from provider_node.core.personal_data import check_free_text
from provider_node.core.vocabulary import Answer, ComparisonMode
from provider_node.core.workdays import as_utc

__all__ = [
    "MAX_ITEMS_PER_DAY",
    "MAX_KEYS",
    "MAX_NAME",
    "MAX_TEXT",
    "answers",
    "calendar_date",
    "comparison_keys",
    "comparison_modes",
    "free_text",
    "instant",
    "items_per_day",
    "name",
    "text",
]

#: Longest duty or reason.
MAX_TEXT = 2000
#: Longest operator name (``decided_by``).
MAX_NAME = 128
MAX_KEYS = 64
MAX_ITEMS_PER_DAY = 10**9


def name(field: str, value: str, pattern: re.Pattern[str]) -> str:
    """``value`` if it is a whole match of ``pattern`` (a department, resource or key name)."""
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise errors.InvalidRequestError(f"{field} {value!r} is not a valid name")
    return value


def comparison_keys(keys: Iterable[str]) -> list[str]:
    """1 to ``MAX_KEYS`` comparison key names, sorted, without repeats."""
    if isinstance(keys, str):
        raise errors.InvalidRequestError("keys must be a list of comparison key names")
    names = sorted({name("comparison key", key, KEY_NAME_RE) for key in keys})
    if not 1 <= len(names) <= MAX_KEYS:
        raise errors.InvalidRequestError(f"name 1 to {MAX_KEYS} comparison keys")
    return names


def comparison_modes(modes: Iterable[str]) -> list[str]:
    """One or more ``ComparisonMode`` values, sorted, without repeats."""
    if isinstance(modes, str):
        raise errors.InvalidRequestError("modes must be a list of comparison modes")
    names = sorted(set(modes))
    known = {mode.value for mode in ComparisonMode}
    if not names or not set(names) <= known:
        raise errors.InvalidRequestError(f"modes must be one or more of {', '.join(sorted(known))}")
    return names


def answers(values: Iterable[str] | None) -> list[str]:
    """One or more ``Answer`` values, sorted, without repeats; None or empty: match only."""
    if isinstance(values, str):
        raise errors.InvalidRequestError("answers must be a list of answers")
    names = sorted(set(values or ())) or [Answer.MATCH.value]
    known = {answer.value for answer in Answer}
    if not set(names) <= known:
        raise errors.InvalidRequestError(
            f"answers must be one or more of {', '.join(sorted(known))}"
        )
    return names


def items_per_day(value: int) -> int:
    """A whole number of items from 1 to ``MAX_ITEMS_PER_DAY``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise errors.InvalidRequestError("items_per_day must be a whole number")
    if not 1 <= value <= MAX_ITEMS_PER_DAY:
        raise errors.InvalidRequestError(f"items_per_day must be from 1 to {MAX_ITEMS_PER_DAY}")
    return value


def calendar_date(field: str, value: date) -> date:
    """A ``date`` (a day in China), not a ``datetime``."""
    if isinstance(value, datetime) or not isinstance(value, date):
        raise errors.InvalidRequestError(f"{field} must be a calendar date")
    return value


def text(field: str, value: str, *, limit: int = MAX_TEXT, blank: str = "") -> str:
    """``value`` stripped: not blank (else ``blank``, or a message naming the field), at most
    ``limit`` characters, no NUL (PostgreSQL text cannot hold it)."""
    stripped = value.strip() if isinstance(value, str) else ""
    if not stripped:
        raise errors.InvalidRequestError(blank or f"{field} must not be blank")
    if len(stripped) > limit or "\x00" in stripped:
        raise errors.InvalidRequestError(f"{field} must be at most {limit} characters, no NUL")
    return stripped


def free_text(field: str, value: str, *, limit: int = MAX_TEXT) -> str:
    """``text`` a department writes, which must hold no resident ID or mobile number: it is kept
    in the audit log for years (``core.personal_data``)."""
    stripped = text(field, value, limit=limit)
    check_free_text(field, stripped)
    return stripped


def instant(value: datetime) -> datetime:
    """An aware ``datetime`` in UTC; a naive one names no point in time."""
    try:
        return as_utc(value)
    except ValueError as exc:
        raise errors.InvalidRequestError(str(exc)) from None
