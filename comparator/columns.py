"""Whole columns normalised at once: what ``fields.normalize`` gives value by value, faster.

A loader or a requester canonicalises a key's values a column at a time (``canonical``).
Resident ID numbers, the usual comparison key, are first checked all at once with numpy
tables derived from the same constants as ``fields``' per-value rule; whatever they leave, and
every value of the other types, goes through that rule, so the results and errors are the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from comparator.errors import FieldError
from comparator.fields import (
    EARLIEST_BIRTH_YEAR,
    ID_CHECK_CHARACTERS,
    MONTH_DAYS,
    PROVINCES,
    FieldType,
    normalizer,
    today_yyyymmdd,
)

__all__ = ["ARRAY_MIN_ROWS", "NormalizedColumn", "normalize_column"]


class NormalizedColumn(NamedTuple):
    """A column of values normalised as one field type.

    ``values[i]`` is the canonical form of input value ``i``, or ``None`` where ``errors`` holds
    ``(i, error)``; ``errors`` is in input order.
    """

    values: list[str | None]
    errors: list[tuple[int, FieldError]]


def normalize_column(
    field_type: FieldType | str, values: Sequence[object], field: str
) -> NormalizedColumn:
    """Every value of a column normalised as ``field_type``: exactly what ``normalize`` gives value
    by value (the same canonical strings, the same errors with the same reasons), faster.

    Resident ID numbers, the usual comparison key, are first checked all at once
    (``_plain_resident_ids``); the values that check leaves, and every value of the other types,
    go through the type's per-value rule.
    """
    normalize_one = normalizer(field_type)
    canonical: list[Any] = list(values)
    left: Iterable[int] = range(len(canonical))
    if FieldType(field_type) is FieldType.CN_RESIDENT_ID:
        left = _plain_resident_ids(canonical)
    errors: list[tuple[int, FieldError]] = []
    for index in left:
        try:
            canonical[index] = normalize_one(values[index], field)
        except FieldError as error:
            canonical[index] = None
            errors.append((index, error))
    return NormalizedColumn(canonical, errors)


# The rules of _resident_id as numpy tables, derived from the same constants. One matrix product
# reads four numbers off the 17 digits of every row at once: the province (digits 1-2), the birth
# year (7-10), the birth month and day as MMDD (11-14) and the weighted sum of ISO 7064 MOD 11-2,
# whose weights are 2^(17-i) mod 11 (the base-13 trick of resident_id_check_character has no array
# form; the tests check both against each other). Float32 sums are exact here: below 2^24.
_ID_NUMBERS = np.zeros((17, 4), dtype=np.float32)
_ID_NUMBERS[0:2, 0] = (10, 1)
_ID_NUMBERS[6:10, 1] = (1000, 100, 10, 1)
_ID_NUMBERS[10:14, 2] = (1000, 100, 10, 1)
_ID_NUMBERS[:, 3] = [pow(2, 17 - i, 11) for i in range(17)]
_ID_ONES = np.ones(17, dtype=np.float32)
_ID_CHECK_CODES = np.frombuffer(ID_CHECK_CHARACTERS.encode("ascii"), dtype=np.uint8)
_ID_PROVINCE_OK = np.zeros(100, dtype=bool)
_ID_PROVINCE_OK[[int(code) for code in PROVINCES]] = True
_ID_MONTH_DAY_OK = np.zeros(10_000, dtype=bool)  # indexed by MMDD as a number
_ID_MONTH_DAY_OK[[int(month_day) for month_day in MONTH_DAYS]] = True
_ID_EARLIEST_YEAR = int(EARLIEST_BIRTH_YEAR)
_ID_BLOCK_ROWS = 4096
ARRAY_MIN_ROWS = 16  # a single-record comparison: 5 µs per value against 60 µs of numpy
_ZERO, _UPPER_X, _LOWER_X = np.uint8(ord("0")), ord("X"), ord("x")


def _plain_resident_ids(column: list[Any]) -> list[int]:
    """Accept, all at once, the resident ID numbers of ``column`` that ``_resident_id`` would
    return unchanged or with its ``x`` upper-cased (upper-cased in place); return the positions of
    all the others, for the per-value rule to canonicalise or refuse.

    Accepted here: a ``str`` of 18 ASCII characters, 17 digits and a digit, ``X`` or ``x``, with a
    known province, a possible birth date from 1800 to today, and the right check character. Such
    a value has nothing for ``_text_of`` to remove or fold. Anything else (a 15-digit number,
    padding, full-width digits, a mistake) is only passed on: an error always comes from the
    per-value rule, with its reason.
    """
    n = len(column)
    if n < ARRAY_MIN_ROWS:
        return list(range(n))  # a few values: the per-value rule is quicker than numpy's setup
    joined: str | None = None
    if set(map(type, column)) == {str}:
        joined = "".join(column)
        if set(map(len, column)) == {18} and joined.isascii():
            candidate = np.ones(n, dtype=bool)
        else:
            candidate = np.fromiter(map(len, column), dtype=np.int64, count=n) == 18
            candidate &= np.fromiter(map(str.isascii, column), dtype=bool, count=n)
    else:  # other types among them (None for a missing value, a number): checked one by one
        candidate = np.fromiter(
            (type(v) is str and len(v) == 18 and v.isascii() for v in column), dtype=bool, count=n
        )
    if joined is not None and candidate.all():
        positions = np.arange(n)
        text = joined
    else:
        positions = np.flatnonzero(candidate)
        text = "".join([column[i] for i in positions.tolist()])
    codes = np.frombuffer(text.encode("ascii"), dtype=np.uint8).reshape(-1, 18)
    # Read the clock once per column: a birth date after it is left to the per-value rule, which
    # reads the clock again before calling it the future.
    today = int(today_yyyymmdd())
    # In blocks that keep the temporaries in the CPU cache (a loader's batch is 100,000s of rows).
    ok = np.concatenate(
        [
            _plain_resident_id_rows(codes[start : start + _ID_BLOCK_ROWS], today)
            for start in range(0, len(codes), _ID_BLOCK_ROWS)
        ]
        or [np.zeros(0, dtype=bool)]
    )
    last = codes[:, 17]
    for i in positions[ok & (last == _LOWER_X)].tolist():
        column[i] = column[i][:17] + "X"
    left = np.ones(n, dtype=bool)
    left[positions[ok]] = False
    return np.flatnonzero(left).tolist()


def _plain_resident_id_rows(codes: npt.NDArray[np.uint8], today: int) -> npt.NDArray[np.bool_]:
    """Which rows of 18 ASCII codes pass every check of ``_resident_id`` (birth up to ``today``,
    a number YYYYMMDD)."""
    body = codes[:, :17] - _ZERO  # a non-digit wraps around to above 9
    last = codes[:, 17]
    ok: npt.NDArray[np.bool_] = ((body > 9).astype(np.float32) @ _ID_ONES) == 0
    ok &= ((last - _ZERO) <= 9) | (last == _UPPER_X) | (last == _LOWER_X)
    province, year, month_day, weighted = (body.astype(np.float32) @ _ID_NUMBERS).astype(np.int64).T
    # A row already refused may hold any numbers: look the tables up at 0 for it.
    ok &= _ID_PROVINCE_OK[np.where(ok, province, 0)]
    ok &= _ID_MONTH_DAY_OK[np.where(ok, month_day, 0)]
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    ok &= (month_day != 229) | leap
    ok &= (year >= _ID_EARLIEST_YEAR) & (year * 10_000 + month_day <= today)
    check = np.where(last == _LOWER_X, _UPPER_X, last)
    ok &= _ID_CHECK_CODES[weighted % 11] == check
    return ok
