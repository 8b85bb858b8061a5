"""Field types and their normalisation: the first step of every comparison.

Two departments only find a match if they spell the same value the same way. A resident ID typed
with a lower-case ``x`` or in full-width digits, a name typed ``张　三`` with an ideographic space
or ``阿依古丽.买买提`` with a full stop for the middle dot, a zero-width space pasted from a web
page, a phone number with ``+86`` in front: all of these must canonicalise to the same string on
both sides, or the comparison silently says "no match". So each field type has one ``normalize``
rule here, and a value that cannot be normalised is refused with a ``FieldError`` whose reason
tells the clerk what to fix. The value itself never appears in the error: it is personal data.

What is deliberately not folded: traditional and simplified characters (张 and 張 are compared as
typed). The mapping is one-to-many and depends on context (乾 is its own character in 乾隆, 於 and
于 are two surnames), a converter's tables change between its releases while both sides must
produce the same bytes, and a register holds a person's name as registered. docs/PROTOCOL.md
section 4 states every rule; changing any of them is a new ``canonical.CANONICAL_VERSION``.

The functions are written for throughput (hashed mode hashes hundreds of thousands of records per
second): an ASCII fast path skips Unicode normalisation, a name of letters only skips the space
and dot rules, each checksum is one C call (``int`` in base 13 or 34), ``normalizer()`` hands
``canonical`` the bound function once so no lookup happens per record.
"""

from __future__ import annotations

import calendar
import datetime as _dt
import decimal
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from enum import StrEnum
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from comparator.china_time import china_today
from comparator.errors import FieldError

__all__ = [
    "FieldType",
    "NormalizedColumn",
    "Normalizer",
    "normalize",
    "normalize_column",
    "normalizer",
    "resident_id_check_character",
    "uscc_check_character",
]


class FieldType(StrEnum):
    """The kinds of value a comparison key can be built from."""

    CN_RESIDENT_ID = "cn_resident_id"
    """Chinese resident identity card number (GB 11643-1999), 18 characters."""
    CN_USCC = "cn_uscc"
    """Unified social credit code of a legal entity (GB 32100-2015), 18 characters."""
    PERSON_NAME = "person_name"
    PHONE = "phone"
    DATE = "date"
    TEXT = "text"
    INTEGER = "integer"


Normalizer = Callable[[object, str], str]
"""``(value, field_name) -> canonical string``; raises ``FieldError`` naming ``field_name``."""

_nfkc = unicodedata.normalize


# Invisible characters, removed before anything else: every format character (Unicode category
# Cf, as of Unicode 14.0: zero-width spaces and joiners, the word joiner, the byte order mark, the
# soft hyphen, bidirectional marks...) and the variation selectors (which pick a glyph, never
# another character). They come from web pages, PDFs and other systems and cannot be seen when
# typed or checked, so two equal-looking values must not differ by them. The list is fixed here,
# not read from the running Python's Unicode tables, so both sides remove the same characters.
_INVISIBLE = (
    "\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U00013438"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f"  # Cf
    "\u180b-\u180d\u180f\ufe00-\ufe0f\U000e0100-\U000e01ef"  # variation selectors
)
_INVISIBLE_RE = re.compile(f"[{_INVISIBLE}]+")


def _text_of(value: object, field: str) -> str:
    """The value without invisible characters, NFKC-normalised and trimmed; refuses non-text."""
    if not isinstance(value, str):
        if value is None:
            raise FieldError(field, "is missing")
        raise FieldError(field, f"must be text, not {type(value).__name__}")
    # NFKC folds full-width letters and digits to their ASCII forms; pure ASCII is already NFKC.
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            # Lone surrogates come from mis-decoded files; they have no UTF-8 encoding to compare.
            raise FieldError(field, "contains characters that are not valid text") from None
        # Letters only (most names) have none. Removed before NFKC, so that a letter and an accent
        # a joiner kept apart still compose.
        if not value.isalpha() and _INVISIBLE_RE.search(value) is not None:
            value = _INVISIBLE_RE.sub("", value)
        value = _nfkc("NFKC", value)
    value = value.strip()
    if not value:
        raise FieldError(field, "is empty")
    return value


def _is_ascii_digits(s: str) -> bool:
    # str.isdigit() alone also accepts Arabic-Indic, superscript and other Unicode digits.
    return s.isascii() and s.isdigit()


# --- cn_resident_id: GB 11643-1999 --------------------------------------------------------------

# ISO 7064 MOD 11-2: the check makes sum(d_i * 2^(17-i)) + check ≡ 1 (mod 11), i = 0..16 from the
# left, with 10 written as X. The weighted sum is 2 * P(2) for the digit polynomial P, and since
# 13 ≡ 2 (mod 11), P(2) ≡ P(13) = int(digits, 13): one C call instead of 17 multiplications.
_ID_CHECK = "10X98765432"  # check character indexed by (weighted sum mod 11)
_ID_EARLIEST_BIRTH_YEAR = "1800"
# Every month-day that exists in a leap year; 29 February is then checked against the year.
_MONTH_DAYS = frozenset(
    f"{d:%m%d}" for d in (_dt.date(2000, 1, 1) + _dt.timedelta(days=i) for i in range(366))
)
_today = [china_today().strftime("%Y%m%d")]
# Digits 1-2: the province-level division of GB/T 2260 where the number was first issued. Every
# code that division has held since resident ID numbers began (1984): 11-15 North, 21-23
# North-East, 31-37 East, 41-46 Centre-South (46 Hainan since 1988), 50-54 South-West (50 Chongqing
# since 1997), 61-65 North-West, 71 Taiwan, 81 Hong Kong, 82 Macao; and 83, the address code
# (830000) of Taiwan residents' residence permits, whose numbers follow the same standard as
# 810000 and 820000 do for Hong Kong and Macao residents. Only the province is checked: codes
# below it are renamed and merged every year, and a number keeps the code it was issued with.
_PROVINCE_RANGES = ((11, 15), (21, 23), (31, 37), (41, 46), (50, 54), (61, 65), (71, 71), (81, 83))
_PROVINCES = frozenset(str(code) for lo, hi in _PROVINCE_RANGES for code in range(lo, hi + 1))


def resident_id_check_character(body17: str) -> str:
    """The ISO 7064 MOD 11-2 check character for 17 ASCII digits."""
    return _ID_CHECK[2 * int(body17, 13) % 11]


def _is_future(yyyymmdd: str) -> bool:
    # The cached date only ever lags behind the real one, so re-read the clock only when needed.
    if yyyymmdd <= _today[0]:
        return False
    _today[0] = china_today().strftime("%Y%m%d")
    return yyyymmdd > _today[0]


def _check_province(s: str, field: str) -> None:
    if s[:2] in _PROVINCES:
        return
    if s[0] == "9" and len(s) == 18:
        # Since 2023 a foreigner's permanent residence card has an 18-digit number of the same
        # form, marked by a first digit 9 (a citizen's starts 1 to 8): another document.
        raise FieldError(
            field, "begins with 9: a foreigner's permanent residence card number, not a resident ID"
        )
    raise FieldError(field, "contains an unknown province code (digits 1-2)")


def _check_birth_date(s: str, field: str) -> None:
    # Strings of 8 ASCII digits compare like the dates they spell, which keeps this off datetime.
    born = s[6:14]
    month_day = born[4:]
    if month_day not in _MONTH_DAYS or (month_day == "0229" and not calendar.isleap(int(born[:4]))):
        raise FieldError(field, "contains an impossible birth date (digits 7-14)")
    if born[:4] < _ID_EARLIEST_BIRTH_YEAR or _is_future(born):
        raise FieldError(field, "contains a birth date out of range (digits 7-14)")


def _resident_id(value: object, field: str) -> str:
    s = _text_of(value, field)
    n = len(s)
    if n == 18:
        body = s[:17]
        if not _is_ascii_digits(body):
            raise FieldError(field, "the first 17 characters must be digits")
        check = s[17]
        if check == "x":
            check = "X"
        elif not (check == "X" or "0" <= check <= "9"):
            raise FieldError(field, "the last character must be a digit or X")
        _check_province(s, field)
        _check_birth_date(s, field)
        if resident_id_check_character(body) != check:
            raise FieldError(field, "check character does not match: a character is mistyped")
        return body + check
    if n == 15:
        # First-generation IDs (before 1999) have a 2-digit year of the 1900s and no check digit.
        if not _is_ascii_digits(s):
            raise FieldError(field, "a 15-character (first-generation) ID must be all digits")
        _check_province(s, field)
        body = s[:6] + "19" + s[6:]
        _check_birth_date(body, field)
        return body + resident_id_check_character(body)
    raise FieldError(field, f"must have 18 characters (or 15 for a first-generation ID), not {n}")


# --- cn_uscc: GB 32100-2015 ---------------------------------------------------------------------

# 31 characters: the digits and the capitals without I, O, S, V, Z (easily confused when written).
_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
# The check makes sum(v_i * 3^i) + check ≡ 0 (mod 31). Since 34 ≡ 3 (mod 31), the sum is
# int(reversed characters, 34) once each character is rewritten as the base-34 digit of its value.
_USCC_AS_BASE34 = str.maketrans(_USCC_ALPHABET, "0123456789ABCDEFGHIJKLMNOPQRSTU")
_USCC_RE = re.compile(r"[0-9A-HJ-NP-RTUW-Y]{18}")


def uscc_check_character(body17: str) -> str:
    """The GB 32100-2015 check character for the first 17 characters of a USCC."""
    total = int(body17[::-1].translate(_USCC_AS_BASE34), 34)
    return _USCC_ALPHABET[-total % 31]


def _uscc(value: object, field: str) -> str:
    s = _text_of(value, field).upper()
    if len(s) != 18:
        raise FieldError(field, f"must have 18 characters, not {len(s)}")
    if _USCC_RE.fullmatch(s) is None:
        raise FieldError(field, "may contain only digits and capital letters other than I O S V Z")
    if uscc_check_character(s[:17]) != s[17]:
        raise FieldError(field, "check character does not match: a character is mistyped")
    return s


# --- person_name --------------------------------------------------------------------------------

# Separators clerks and input methods put between the parts of a transliterated name
# (阿依古丽·买买提): all fold to U+00B7 MIDDLE DOT, the one GB 18030 names prescribe. Listed as they
# stand after NFKC, which has already made U+0387 a U+00B7, U+FF0E U+2024 U+FE52 a ".", U+FF61 a
# "。" and U+FF65 a U+30FB.
_NAME_DOTS = (
    "."  # FULL STOP: a Latin keyboard's dot
    "\u00b7"  # MIDDLE DOT: the canonical separator
    "\u16eb"  # RUNIC SINGLE PUNCTUATION
    "\u2022"  # BULLET: word processors' autocorrect
    "\u2027"  # HYPHENATION POINT: the middle dot of Big5 and traditional-character input
    "\u2219"  # BULLET OPERATOR
    "\u22c5"  # DOT OPERATOR
    "\u2e31"  # WORD SEPARATOR MIDDLE DOT
    "\u2e33"  # RAISED DOT
    "\u3002"  # IDEOGRAPHIC FULL STOP: a Chinese input method's "." key
    "\u30fb"  # KATAKANA MIDDLE DOT: Japanese fonts and input methods, and Shift-JIS data
    "\ua78f"  # LATIN LETTER SINOLOGICAL DOT
)
# A run of dots and the spaces around them (typing noise) is one separator: "阿依古丽 .. 买买提".
_DOT_RUN_RE = re.compile(f" ?[{_NAME_DOTS}][ {_NAME_DOTS}]*")
_find_dot = re.compile(f"[{_NAME_DOTS}]").search
# Han characters, as they stand after NFKC. Chinese is written without spaces, so a space between
# two of them is a typing or layout artefact ("张　三" from a form that pads two-character names
# to the width of three). The private use area counts: Chinese registers store the rare
# characters their encoding lacked there (GB 18030's user-defined area); planes 2 and 3 hold the
# ideograph extensions B to I and those still to come.
_HAN = (
    "\u3007"  # IDEOGRAPHIC NUMBER ZERO
    "\u3400-\u4dbf"  # CJK Unified Ideographs Extension A
    "\u4e00-\u9fff"  # CJK Unified Ideographs
    "\ue000-\uf8ff"  # Private Use Area
    "\uf900-\ufaff"  # CJK Compatibility Ideographs (NFKC maps all but the 12 unified ones)
    "\U00020000-\U0003ffff"  # Supplementary and Tertiary Ideographic Planes
)
_HAN_SPACE_RE = re.compile(f"(?<=[{_HAN}]) (?=[{_HAN}])")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _fold_whitespace(s: str, field: str) -> str:
    """Inner runs of whitespace as one space; refuses control characters."""
    # Fast path: printable text (no tabs, line breaks or odd spaces) without double spaces is
    # already folded. Otherwise str.split() splits on every Unicode space, tab and line break.
    if s.isprintable() and "  " not in s:
        return s
    s = " ".join(s.split())
    if _CONTROL_RE.search(s) is not None:
        raise FieldError(field, "contains control characters")
    return s


def _person_name(value: object, field: str) -> str:
    s = _text_of(value, field)
    if s.isalpha():  # most names: letters only, no space, dot or control character
        return s
    s = _fold_whitespace(s, field)
    if _find_dot(s) is not None:
        # Dots at either end separate nothing: a stray "。" typed after the name goes.
        s = _DOT_RUN_RE.sub("\u00b7", s).strip("\u00b7")
        if not s:
            raise FieldError(field, "is empty")
    if " " in s and not s.isascii():
        # Latin words keep their one space; Han characters are written without.
        s = _HAN_SPACE_RE.sub("", s)
    return s


def _text(value: object, field: str) -> str:
    if type(value) is int:  # not bool: True is not the text "True"
        return str(value)
    return _fold_whitespace(_text_of(value, field), field)


# --- phone --------------------------------------------------------------------------------------

_PHONE_SEPARATORS = str.maketrans("", "", " -().\u00a0")
_MOBILE_RE = re.compile(r"1[3-9]\d{9}")


def _phone(value: object, field: str) -> str:
    if type(value) is int and value > 0:
        s = str(value)
    else:
        s = _text_of(value, field).translate(_PHONE_SEPARATORS)
    international = s.startswith("+")
    if international:
        s = s[1:]
    elif s.startswith("00"):
        international, s = True, s[2:]
    if not _is_ascii_digits(s):
        raise FieldError(field, "may contain only digits, spaces, dashes, dots, brackets and +")
    if international:
        if not s.startswith("86"):
            # Foreign numbers are kept in international form so +1… and 001… compare equal.
            if not 7 <= len(s) <= 15:
                raise FieldError(field, "an international number has 7 to 15 digits")
            return "00" + s
        s = s[2:]
        if _MOBILE_RE.fullmatch(s) is None:
            # +86 landlines drop the trunk 0 of the area code (+86 28 … is 028 …).
            s = "0" + s
    elif len(s) == 13 and s.startswith("86") and _MOBILE_RE.fullmatch(s, 2) is not None:
        s = s[2:]
    if s.startswith("1"):
        if _MOBILE_RE.fullmatch(s) is None:
            raise FieldError(field, "a mobile number has 11 digits starting 13-19")
    elif s.startswith("0"):
        if not 10 <= len(s) <= 12:
            raise FieldError(field, "a landline with area code has 10 to 12 digits")
    elif not 7 <= len(s) <= 8:
        raise FieldError(field, "a local number without area code has 7 or 8 digits")
    return s


# --- date ---------------------------------------------------------------------------------------

_DATE_RES = (
    re.compile(r"(\d{4})([-/.])(\d{1,2})\2(\d{1,2})", re.ASCII),
    re.compile(r"(\d{4})()(\d{2})(\d{2})", re.ASCII),
    re.compile(r"(\d{4})(年)(\d{1,2})月(\d{1,2})日?", re.ASCII),
)


def _date(value: object, field: str) -> str:
    if isinstance(value, _dt.datetime):
        # A date column read through some drivers arrives as midnight; anything else is a time.
        if value.tzinfo is not None or value.time() != _dt.time():
            raise FieldError(field, "must be a date without a time of day")
        value = value.date()
    if isinstance(value, _dt.date):
        return value.isoformat()
    if type(value) is int:
        value = str(value)
    s = _text_of(value, field)
    for pattern in _DATE_RES:
        m = pattern.fullmatch(s)
        if m is not None:
            try:
                return _dt.date(int(m.group(1)), int(m.group(3)), int(m.group(4))).isoformat()
            except ValueError:
                raise FieldError(field, "is not a real calendar date") from None
    raise FieldError(field, "must be a date written year-month-day, e.g. 2024-01-05")


# --- integer ------------------------------------------------------------------------------------

_INTEGER_RE = re.compile(r"([+-]?)0*(\d+)", re.ASCII)


def _integer(value: object, field: str) -> str:
    if type(value) is int:
        return str(value)
    if isinstance(value, bool):
        raise FieldError(field, "must be a whole number, not true/false")
    if isinstance(value, float):
        if not (math.isfinite(value) and value.is_integer()):
            raise FieldError(field, "must be a whole number, without a fraction")
        return str(int(value))
    if isinstance(value, decimal.Decimal):
        if not (value.is_finite() and value == value.to_integral_value()):
            raise FieldError(field, "must be a whole number, without a fraction")
        return str(int(value))
    if isinstance(value, int):  # an int subclass such as an IntEnum member
        return str(int(value))
    m = _INTEGER_RE.fullmatch(_text_of(value, field))
    if m is None:
        raise FieldError(field, "must be a whole number written with digits only")
    sign, digits = m.groups()
    if digits == "0":  # "-0" and "+000" are zero
        return "0"
    return "-" + digits if sign == "-" else digits


_NORMALIZERS: dict[FieldType, Normalizer] = {
    FieldType.CN_RESIDENT_ID: _resident_id,
    FieldType.CN_USCC: _uscc,
    FieldType.PERSON_NAME: _person_name,
    FieldType.PHONE: _phone,
    FieldType.DATE: _date,
    FieldType.TEXT: _text,
    FieldType.INTEGER: _integer,
}


def normalizer(field_type: FieldType | str) -> Normalizer:
    """The normalising function for ``field_type``, looked up once (``ValueError`` if unknown)."""
    return _NORMALIZERS[FieldType(field_type)]


def normalize(field_type: FieldType | str, value: object, *, field: str = "value") -> str:
    """The canonical form of ``value`` as ``field_type``.

    Raises ``FieldError(field, reason)`` if the value is missing or invalid for the type; the reason
    says what is wrong without repeating the value.
    """
    return normalizer(field_type)(value, field)


# --- whole columns ------------------------------------------------------------------------------


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
_ID_CHECK_CODES = np.frombuffer(_ID_CHECK.encode("ascii"), dtype=np.uint8)
_ID_PROVINCE_OK = np.zeros(100, dtype=bool)
_ID_PROVINCE_OK[[int(code) for code in _PROVINCES]] = True
_ID_MONTH_DAY_OK = np.zeros(10_000, dtype=bool)  # indexed by MMDD as a number
_ID_MONTH_DAY_OK[[int(month_day) for month_day in _MONTH_DAYS]] = True
_ID_EARLIEST_YEAR = int(_ID_EARLIEST_BIRTH_YEAR)
_ID_BLOCK_ROWS = 4096
_ID_ARRAY_MIN_ROWS = 16  # a single-record comparison: 5 µs per value against 60 µs of numpy
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
    if n < _ID_ARRAY_MIN_ROWS:
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
    _today[0] = max(_today[0], china_today().strftime("%Y%m%d"))
    today = int(_today[0])
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
